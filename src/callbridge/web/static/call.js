// One call's conversation as it happens: original and translation side by side, per speaker.
'use strict';

(() => {
  const root = document.getElementById('call');
  const callId = root.dataset.callId;
  const list = document.getElementById('utterances');
  const jump = document.getElementById('jump');
  const states = new Map(); // utterance_id -> state (same shape as the API's utterances)
  const views = new Map(); // utterance_id -> DOM nodes
  let call = null;

  // --- scrolling: follow new lines only while the reader is at the bottom ---
  function nearBottom() {
    const doc = document.documentElement;
    return window.innerHeight + window.scrollY >= doc.scrollHeight - 80;
  }
  function toBottom() {
    window.scrollTo(0, document.documentElement.scrollHeight);
    jump.hidden = true;
  }
  function changing(update) {
    const follow = nearBottom();
    update();
    if (follow) toBottom(); else jump.hidden = false;
  }
  window.addEventListener('scroll', () => { if (nearBottom()) jump.hidden = true; });
  jump.addEventListener('click', toBottom);

  // --- the call header ---
  function renderCall() {
    const status = document.getElementById('status');
    if (!call) {
      status.textContent = 'unknown call';
      status.className = 'badge status status-unknown';
      return;
    }
    status.textContent = call.status;
    status.className = `badge status status-${call.status}`;
    document.getElementById('langs').textContent = CB.untranslated(call)
      ? `caller and operator both speak ${CB.languageLabel(call, 'caller')}: no translation`
      : `caller ${CB.languageLabel(call, 'caller')} ⇄ operator ${CB.languageLabel(call, 'operator')}`;
    document.getElementById('parties').textContent =
      `${call.caller_number || ''}${call.operator_number ? ' → ' + call.operator_number : ''}`;
    document.getElementById('end-reason').textContent = call.end_reason ? `ended: ${call.end_reason}` : '';
    tick();
  }
  function tick() {
    document.getElementById('duration').textContent = CB.fmtDuration(CB.callDuration(call));
  }

  // --- utterances ---
  function view(state) {
    let v = views.get(state.utterance_id);
    if (v) return v;
    const li = CB.el('li', `utt speaker-${state.speaker}`);
    li.dataset.utteranceId = state.utterance_id;
    const head = CB.el('div', 'utt-head');
    const who = CB.el('span', 'who', state.speaker === 'caller' ? 'Caller' : 'Operator');
    const time = CB.el('time', 'at');
    const latency = CB.el('span', 'latency');
    const played = CB.el('span', 'played');
    head.append(who, time, latency, played);
    const body = CB.el('div', 'utt-body');
    const orig = CB.el('div', 'side orig');
    const origLang = CB.el('span', 'lang');
    const origText = CB.el('p', 'text');
    orig.append(origLang, origText);
    const tr = CB.el('div', 'side tr');
    const trLang = CB.el('span', 'lang');
    const trText = CB.el('p', 'text');
    tr.append(trLang, trText);
    body.append(orig, tr);
    li.append(head, body);
    v = { li, time, latency, played, origLang, origText, trLang, trText };
    views.set(state.utterance_id, v);
    list.append(li);
    return v;
  }

  function setText(node, final, partial) {
    const isFinal = typeof final === 'string';
    node.textContent = isFinal ? final : (partial || '…');
    node.classList.toggle('partial', !isFinal);
  }

  function render(state) {
    const v = view(state);
    v.origLang.textContent = (state.source_language || '').toUpperCase();
    v.trLang.textContent = (state.target_language || '').toUpperCase();
    setText(v.origText, state.source_text, state.source_partial);
    setText(v.trText, state.translation, state.translation_partial);
    const at = state.speech_end_at || state.first_seen_at;
    v.time.textContent = CB.fmtClock(at);
    if (typeof at === 'number') v.time.dateTime = new Date(at * 1000).toISOString();
    const latency = (typeof state.speech_end_at === 'number' && typeof state.translated_at === 'number')
      ? Math.round((state.translated_at - state.speech_end_at) * 1000) : null;
    v.latency.textContent = latency === null ? '' : `${latency} ms`;
    v.latency.title = 'from end of speech to translation received';
    v.played.textContent = typeof state.played_at === 'number' ? `✓ played ${CB.fmtClock(state.played_at)}` : '';
    v.li.classList.toggle('is-final', typeof state.source_text === 'string');
    v.li.classList.toggle('is-played', typeof state.played_at === 'number');
    document.getElementById('empty').hidden = true;
  }

  function apply(event) {
    const id = event.utterance_id;
    if (!id) return;
    let s = states.get(id);
    if (!s) {
      s = { utterance_id: id, direction: event.direction, speaker: event.speaker, first_seen_at: event.ts };
      states.set(id, s);
    }
    const data = event.data || {};
    switch (event.kind) {
      case 'partial':
        s.source_partial = event.text; s.source_language = s.source_language || event.language; break;
      case 'final':
        s.source_text = event.text; s.source_partial = null;
        s.source_language = event.language || s.source_language;
        s.speech_end_at = typeof data.speech_end_at === 'number' ? data.speech_end_at : event.ts; break;
      case 'translation_partial':
        s.translation_partial = event.text; s.target_language = s.target_language || event.language; break;
      case 'translation':
        s.translation = event.text; s.translation_partial = null;
        s.target_language = event.language || s.target_language; s.translated_at = event.ts; break;
      case 'played':
        s.played_at = typeof data.played_at === 'number' ? data.played_at : event.ts; break;
      default: return;
    }
    render(s);
  }

  CB.openFeed(`/api/calls/${encodeURIComponent(callId)}/feed`, (message) => {
    changing(() => {
      if (message.type === 'snapshot') {
        call = message.call;
        states.clear(); views.clear(); list.replaceChildren();
        document.getElementById('empty').hidden = false;
        for (const u of message.utterances || []) { states.set(u.utterance_id, u); render(u); }
        renderCall();
      } else if (message.type === 'event') {
        if (message.kind === 'call') { call = message.data; renderCall(); } else apply(message);
      }
    });
  });
  setInterval(() => { if (call && call.status !== 'ended') tick(); }, 1000);
})();
