// Shared helpers for the transcript pages. No framework, no build step.
// Every piece of call data reaches the DOM through textContent, never innerHTML.
'use strict';

const CB = (() => {
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function pad(n) { return String(n).padStart(2, '0'); }

  function fmtClock(ts) {
    if (typeof ts !== 'number') return '';
    const d = new Date(ts * 1000);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtDuration(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds)) return '';
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  }

  // Seconds to add to the browser's clock to get the server's (from each snapshot).
  let clockOffset = 0;
  function serverNow() { return Date.now() / 1000 + clockOffset; }
  function syncClock(serverTime) {
    if (typeof serverTime === 'number') clockOffset = serverTime - Date.now() / 1000;
  }

  function callDuration(call) {
    if (!call) return null;
    const start = call.answered_at || call.received_at;
    if (typeof start !== 'number') return null;
    const end = call.status === 'ended' ? (call.ended_at || start) : serverNow();
    return end - start;
  }

  function setConn(state) {
    const node = document.getElementById('conn');
    if (!node) return;
    const labels = { live: 'live', reconnecting: 'reconnecting…', connecting: 'connecting…' };
    node.textContent = labels[state] || state;
    node.className = `conn conn-${state}`;
    node.dataset.state = state;
  }

  // A server-sent events feed that resumes where it left off. The browser's own reconnect is
  // replaced by ours so the resume point also survives a failed reconnect (e.g. a daemon restart)
  // and a silent connection is noticed by the missing heartbeats.
  function openFeed(url, onMessage) {
    let lastId = null;
    let source = null;
    let backoffMs = 500;
    let staleMs = 40000;
    let watchdog = null;

    function arm() {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => restart(), staleMs);
    }

    async function checkSession() {
      try {
        const r = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
        if (r.status === 401) {
          window.location.href = '/login?next=' + encodeURIComponent(window.location.pathname);
        }
      } catch (_) { /* offline: keep retrying the feed */ }
    }

    function restart() {
      if (source) source.close();
      source = null;
      clearTimeout(watchdog);
      setConn('reconnecting');
      setTimeout(connect, backoffMs);
      backoffMs = Math.min(backoffMs * 2, 8000);
      checkSession();
    }

    function connect() {
      const target = lastId ? `${url}?last_event_id=${encodeURIComponent(lastId)}` : url;
      source = new EventSource(target);
      source.onopen = () => { backoffMs = 500; setConn('live'); arm(); };
      source.onerror = () => restart();
      source.onmessage = (event) => {
        arm();
        if (event.lastEventId) lastId = event.lastEventId;
        let message;
        try { message = JSON.parse(event.data); } catch (_) { return; }
        if (message.type === 'snapshot') {
          syncClock(message.server_time);
          if (message.heartbeat_s) staleMs = message.heartbeat_s * 2500;
        }
        if (message.type !== 'heartbeat') onMessage(message);
      };
    }

    setConn('connecting');
    connect();
  }

  // How a call's languages were chosen (CallRecord.*_language_source), for people.
  const SOURCES = {
    prefix: 'by number', menu: 'chosen on the keypad', detected: 'detected',
    operator_speaks: 'no translation',
  };
  function languageLabel(call, side) {
    const code = call[`${side}_language`];
    if (code === 'auto') return 'detecting…';
    const source = SOURCES[call[`${side}_language_source`]];
    return `${(code || '?').toUpperCase()}${source ? ` (${source})` : ''}`;
  }
  function untranslated(call) { return call.operator_language_source === 'operator_speaks'; }

  return {
    el, fmtClock, fmtDuration, callDuration, serverNow, openFeed, setConn, languageLabel,
    untranslated,
  };
})();
