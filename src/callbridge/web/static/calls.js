// The live call list: active calls with a ticking duration, then recent ones.
'use strict';

(() => {
  const calls = new Map();
  const activeList = document.getElementById('active');
  const recentList = document.getElementById('recent');

  function card(call) {
    const li = CB.el('li', `call-card is-${call.status}`);
    li.dataset.callId = call.id;
    const link = CB.el('a', 'call-link');
    link.href = `/calls/${encodeURIComponent(call.id)}`;
    const top = CB.el('div', 'card-top');
    top.append(
      CB.el('span', `badge status status-${call.status}`, call.status),
      CB.el('span', 'langs', CB.untranslated(call)
        ? `${CB.languageLabel(call, 'caller')} · no translation`
        : `${CB.languageLabel(call, 'caller')} ⇄ ${CB.languageLabel(call, 'operator')}`),
      CB.el('span', 'duration', CB.fmtDuration(CB.callDuration(call))),
    );
    const parties = CB.el('div', 'parties',
      `${call.caller_number || 'unknown caller'} → ${call.operator_number || 'operator'}`);
    const times = CB.el('div', 'times', `started ${CB.fmtClock(call.received_at)}` +
      (call.end_reason ? ` · ${call.end_reason}` : ''));
    link.append(top, parties, times);
    li.append(link);
    return li;
  }

  function render() {
    const sorted = [...calls.values()].sort((a, b) => (b.received_at || 0) - (a.received_at || 0));
    const active = sorted.filter((c) => c.status !== 'ended');
    const recent = sorted.filter((c) => c.status === 'ended').slice(0, 50);
    activeList.replaceChildren(...active.map(card));
    recentList.replaceChildren(...recent.map(card));
    document.getElementById('active-count').textContent = String(active.length);
    document.getElementById('no-active').hidden = active.length > 0;
    document.getElementById('no-recent').hidden = recent.length > 0;
  }

  function tick() {
    for (const li of activeList.children) {
      const call = calls.get(li.dataset.callId);
      const node = li.querySelector('.duration');
      if (call && node) node.textContent = CB.fmtDuration(CB.callDuration(call));
    }
  }

  CB.openFeed('/api/feed', (message) => {
    if (message.type === 'snapshot') {
      calls.clear();
      for (const call of message.calls || []) calls.set(call.id, call);
      render();
    } else if (message.type === 'event' && message.kind === 'call' && message.data) {
      calls.set(message.data.id, message.data);
      render();
    }
  });
  setInterval(tick, 1000);
})();
