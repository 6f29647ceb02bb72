"""A faithful fake Twilio (Programmable Voice + bidirectional Media Streams) for offline tests.

It plays the carrier between callbridge and two scripted phones: a *caller* who dials our number
(``POST {app}/twiml/client``) and *operators* the app dials through the REST API. It runs the
TwiML the app returns, opens the ``<Connect><Stream>`` WebSockets, streams each phone's voice in
real time, plays what the app sends back through Twilio's buffer/mark/clear semantics, signs every
request with ``X-Twilio-Signature`` and records everything for assertions.

Use in-process (tests)::

    sim = await nursery.start(serve_twilio_sim, SimOptions(app_url, account_sid, auth_token, scenario))
    call = sim.start_inbound_call()          # or POST {sim.url}/_sim/call
    await sim.wait_idle(30); sim.report(); sim.write_wavs(path)

or as a process: ``callbridge sim twilio --port 0 --app-url http://127.0.0.1:APP --account-sid AC..
--auth-token T [--scenario s.json] [--script script.json] [--out-dir DIR] [--call-after 0.5]
[--from N] [--to N] [--caller-hangup-at S] [--caller-hangup-while-ringing]
[--caller-status-callback URL] [--operator-outcome answer|busy|no-answer|failed]
[--operator-answer-delay S] [--operator-hangup-at S] [--duplicate-callbacks]
[--reorder-callbacks] [--fault KIND[:PARTY[:AT_S[:DURATION_S]]]]... [--rest-error EP:STATUS[:TIMES]]...
[--no-recording] [--detect-tones HZ,HZ,...]``.
It prints ``{"event": "sim_ready", "url": "http://127.0.0.1:PORT", "sim": "twilio"}`` when ready.

Scenario JSON (every key optional; unknown keys are rejected)::

    {
      "caller": {"from": "+15550100001", "to": "+15550100000",
                 "start_after_s": null,              # dial automatically; null = wait for /_sim/call
                 "hangup_at_s": null,                # after dialling
                 "hangup_while_operator_rings": false, "hangup_ring_delay_s": 0.0,
                 "status_callback": null,            # the number's StatusCallback URL (completed only)
                 "voice": "tone",                    # tone | silence (script mode: script)
                 "menu_digits": [], "menu_press_delay_s": 0.5,   # keys pressed at each <Gather>
                 "app_url": null},                   # dial this app, not --app-url (N apps)
      "operators": {"+15550200001": {"outcome": "busy"}},   # by dialled number
      "default_operator": {"outcome": "answer",      # answer | busy | no-answer | failed
                           "answer_delay_s": 1.0,    # >= Timeout means no-answer after Timeout
                           "hangup_at_s": null,      # after answering
                           "voice": "tone"},
      "callbacks": {"duplicate": false, "reorder": false, "hold_s": 1.0},
      "rest_errors": [{"endpoint": "create", "status": 429, "times": 2,    # create|update|fetch
                       "after_acting": false}],      # true: do the work, then answer the error
      "rest_delays": [{"endpoint": "create",         # create|update|fetch: takes effect at
                       "delay_s": 2.0, "times": 1}], # once, answers delay_s later
      "faults": [{"kind": "slow_reader", "party": "caller", "at_s": 2.0, "duration_s": 3.0},
                 {"kind": "bad_signature", "target": "webhooks", "times": 1},
                 {"kind": "abrupt_close", "party": "operator", "on_hangup": true}],
      "timing": {"say_ms_per_char": 60, "say_max_s": 10, "play_nominal_s": 2.0,
                 "ring_delay_s": 0.1, "busy_delay_s": 0.5, "fail_delay_s": 0.2,
                 "webhook_timeout_s": 15, "stream_connect_timeout_s": 10, "stop_timeout_s": 2},
      "tone": {"on_s": 1.2, "off_s": 1.8, "start_delay_s": 0.3, "level_dbfs": -12},
      "script": {"path": "script.json", "settle_s": 0.4, "quiet_s": 0.7,
                 "translation_wait_s": 8, "turn_timeout_s": 30},        # or just "script.json"
      "ended_call_update_code": 20404,               # REST hang-up of an ended call: 20404 | 21220
      "record_audio": true,                          # false: phones keep no audio, write no WAVs
      "dtmf": [{"digits": "*3", "at_s": 5.0,         # keys pressed on the media stream (dtmf
                "party": "caller", "gap_s": 0.3}]    # events), at_s after the stream started
    }

The caller's ``menu_digits`` (e.g. ``["2"]``) are the keys pressed at each ``<Gather>`` in order
(``""`` = none, the Gather times out), ``menu_press_delay_s`` (0.5) after its prompts; the action
request then carries ``Digits``.

Fault kinds: ``bad_signature`` / ``missing_signature`` (``target`` all|webhooks|websocket,
``times``), and per stream (``party``, ``at_s`` after the stream started): ``abrupt_close`` (TCP
dropped without ``stop``; the call then ends; ``on_hangup: true`` does it at hang-up instead of
``stop``), ``binary_frame``, ``malformed_json``, ``oversized_frame`` (one text message of
``size_bytes`` characters), ``slow_reader`` (stop reading for ``duration_s``). A stream fault
with ``call_sid`` hits only that call's streams; added at runtime while that call's stream is
live, it fires there ``at_s`` after it was added.

Control endpoints (JSON)::

    GET  /_sim/report                      the full report (see TwilioSim.report)
    POST /_sim/call       {"from","to","hangup_at_s",...}  -> {"call_sid"}   (caller overrides)
    POST /_sim/hangup     {"party": "caller"|"operator"} or {"call_sid"}  -> {"hung_up": [sids]}
    POST /_sim/dtmf       {"party": "caller", "digits": "*3", "gap_s": 0.3} -> {"streams": [sids]}
    POST /_sim/write-wavs {"dir": "/path"} -> {"files": [...]}   ({party}-heard.wav, -said.wav)
    POST /_sim/faults     {"faults": [...], "rest_errors": [...], "rest_delays": [...],
                           "callbacks": {...}, "default_operator": {...}}
                          -> counts, "injected" (faults fired on a live stream at once);
                          callbacks and default_operator apply to calls created from now on
    POST /_sim/wait-idle  {"timeout_s": 60} -> {"idle": bool}   (all calls + callbacks finished)
    POST /_sim/stats      -> per stream since the previous call: lateness, jitter, underruns,
                          late ticks, warnings, tone onsets said/heard (load tests; meters.py)
    POST /_sim/shutdown   -> hang up, write --out-dir WAVs, exit

Tone mode: the caller says 500 Hz bursts, operators 800 Hz (1.2 s on / 1.8 s off, mu-law 0xFF
silence between). Script mode: see :mod:`callbridge.sim.twilio.conversation` for the turn rule.
Behaviours the docs leave open are fixed here: pending marks are NOT echoed before ``stop``; no
``stop`` is sent when the app closes the socket; ``<Connect action>`` is not requested after a
hang-up; the first ``media.timestamp`` is ``"0"``; messages with extra fields are ignored (31951).
"""

from __future__ import annotations

from callbridge.sim.twilio.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_from_dict,
)
from callbridge.sim.twilio.server import serve_twilio_sim
from callbridge.sim.twilio.sim import SimOptions, TwilioSim

__all__ = [
    "Scenario",
    "ScenarioError",
    "SimOptions",
    "TwilioSim",
    "load_scenario",
    "scenario_from_dict",
    "serve_twilio_sim",
]
