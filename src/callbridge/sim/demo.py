"""``callbridge demo``: one whole translated call, offline, narrated for a person.

It starts the Palabra simulator, the Twilio simulator and the real daemon as processes on
127.0.0.1 (:class:`callbridge.sim.stack.Stack`), has the simulated caller dial in, and follows the
call through three windows: the daemon's JSON log (call started, operator ringing/answered,
bridged, ended), the Twilio simulator's report (who is speaking) and the transcript API (what was
recognised, translated and heard). When the scripted conversation is over the caller hangs up,
the phones' audio is written as ``caller-heard.wav`` / ``operator-heard.wav`` and a summary is
printed: every utterance with its latency, frames per leg, the end reason, and a check that each
listener's recording holds the other party's translated speech.

Script mode (default) plays ``sim/assets/demo/script.json`` (or ``--script PATH``); ``--tone``
uses tone bursts instead and hangs up after :data:`TONE_TALK_S`. Every wait is bounded; the exit
code is non-zero with a one-line reason when a process dies, the call ends early, or the
conversation does not finish within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs
import httpx
import numpy as np
from numpy.typing import NDArray

from callbridge.audio import TWILIO_RATE, read_wav_mono
from callbridge.log import configure_logging
from callbridge.sim.analysis import tone_power_db
from callbridge.sim.demo_guide import keep_running_lines, legend_lines, wait_for_enter
from callbridge.sim.palabra.script import DEFAULT_SCRIPT
from callbridge.sim.palabra.tones import TONE_HZ
from callbridge.sim.stack import Stack, StackOptions

__all__ = [
    "CALL_TIMEOUT_S",
    "DEFAULT_OUT",
    "DemoFailed",
    "DemoOptions",
    "DemoScript",
    "ScriptLine",
    "build_parser",
    "find_in_recording",
    "main",
    "run_demo",
]

DEFAULT_OUT: Final = Path("demo-output")
CALL_TIMEOUT_S: Final = 180.0
# Tone mode has no script to finish: the phones beep at each other this long after the bridge.
TONE_TALK_S: Final = 12.0
# After the last turn ended, its translation must be heard within this long.
LAST_TRANSLATION_WAIT_S: Final = 25.0
HANGUP_TIMEOUT_S: Final = 30.0
POLL_S: Final = 0.25
WEB_TOKEN: Final = "demo-web-token-for-loopback-only-use"  # throwaway; >= MIN_WEB_TOKEN_CHARS
TONE_LANGUAGES: Final = ("en", "es")
# A listener's recording "holds" a translation when the normalised cross-correlation of the
# translated audio (resampled to 8 kHz) against it peaks above this; the wrong listener's
# recording scores about 0.1-0.25, the right one about 0.99 (mu-law and resampling noise only).
MATCH_THRESHOLD: Final = 0.6
TONE_MARGIN_DB: Final = 10.0  # tone mode: the right translation tone beats the wrong one by this
LOUD_RMS: Final = 300.0  # int16 RMS of a 20 ms frame (about -40 dBFS): speech, not silence


class DemoFailed(Exception):
    """The demo could not complete; the message says why, for a person."""


@attrs.frozen
class ScriptLine:
    speaker: str  # "caller" | "operator"
    source_text: str
    translated_text: str
    translated_audio: Path


@attrs.frozen
class DemoScript:
    path: Path
    caller_language: str
    operator_language: str
    lines: tuple[ScriptLine, ...]

    @classmethod
    def load(cls, path: Path) -> DemoScript:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            lines = tuple(
                ScriptLine(
                    str(t["speaker"]),
                    str(t["source_text"]),
                    str(t["translated_text"]),
                    path.parent / str(t["translated_audio"]),
                )
                for t in raw["turns"]
            )
            return cls(path, str(raw["caller_language"]), str(raw["operator_language"]), lines)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = f"cannot use script {path}: {exc!r}"
            raise DemoFailed(msg) from exc


@attrs.frozen
class DemoOptions:
    out: Path = DEFAULT_OUT
    script: Path | None = DEFAULT_SCRIPT  # None: tone mode
    keep_running: bool = False
    timeout_s: float = CALL_TIMEOUT_S


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="callbridge demo",
        description="Play a whole translated call offline: the real daemon, simulated Twilio "
        "and Palabra on 127.0.0.1, a scripted English/Russian conversation.",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the WAVs go (%(default)s)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--script", type=Path, default=None, help="conversation script.json")
    mode.add_argument("--tone", action="store_true", help="tone bursts instead of a script")
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the daemon and simulators up after the call (Ctrl-C stops them)",
    )
    p.add_argument("--timeout", type=float, default=CALL_TIMEOUT_S, help="seconds for the call")
    return p


def main(argv: list[str], *, log_format: str | None = None, log_level: str | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(level=log_level or "warning", fmt=log_format or "console", stream=sys.stderr)
    options = DemoOptions(
        out=args.out,
        script=None if args.tone else (args.script or DEFAULT_SCRIPT).resolve(),
        keep_running=args.keep_running,
        timeout_s=args.timeout,
    )
    # Ctrl-C and SIGTERM both unwind through Stack's cleanup (every child stopped), even when
    # the shell started us with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return run_demo(options)
    except DemoFailed as exc:
        print(f"\ncallbridge demo FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ncallbridge demo: interrupted, everything stopped", flush=True)
        return 130


# ---- narration -----------------------------------------------------------------------------------


@attrs.define
class Narrator:
    """Timestamped progress lines on stdout, relative to the start of the demo."""

    t0: float = attrs.Factory(time.time)

    def say(self, text: str, at: float | None = None) -> None:
        print(f"[{(at or time.time()) - self.t0:6.1f}s] {text}", flush=True)

    def plain(self, text: str = "") -> None:
        print(text, flush=True)


# ---- the run -------------------------------------------------------------------------------------


def run_demo(options: DemoOptions) -> int:
    script = DemoScript.load(options.script) if options.script else None
    caller_lang, operator_lang = (
        (script.caller_language, script.operator_language) if script else TONE_LANGUAGES
    )
    say = Narrator()
    mode = f"script {script.path} ({len(script.lines)} turns)" if script else "tone mode"
    say.plain(f"callbridge demo: {mode}; caller speaks {caller_lang}, operator {operator_lang}")
    sim_args = ["--script", str(script.path)] if script else []
    out = options.out.resolve()
    with tempfile.TemporaryDirectory(prefix="callbridge-demo-") as tmp:
        stack_options = StackOptions(
            workdir=Path(tmp),
            palabra_args=sim_args,
            twilio_args=sim_args,
            caller_language=caller_lang,
            operator_language=operator_lang,
            web_token=WEB_TOKEN,
        )
        try:
            with _stack(stack_options, say) as stack:
                _run_call(stack, script, options, out, say)
                if options.keep_running:
                    _keep_running(stack, say)
                else:
                    _until_enter(stack, say)
        finally:
            _save_logs(Path(tmp), out / "logs")
            say.plain(f"process logs: {out / 'logs'}")
    return 0


@contextmanager
def _stack(options: StackOptions, say: Narrator) -> Iterator[Stack]:
    say.say("starting the Palabra simulator, the Twilio simulator and the daemon on 127.0.0.1")
    try:
        stack = Stack(options).__enter__()
    except (RuntimeError, TimeoutError, OSError) as exc:
        msg = f"could not start the stack: {exc}"
        raise DemoFailed(msg) from exc
    try:
        say.say(f"Palabra simulator up at {stack.palabra_url}")
        say.say(f"Twilio simulator up at {stack.twilio_url}")
        say.say(f"callbridge daemon listening on {stack.app_url}")
        yield stack
    finally:
        say.say("stopping the daemon and the simulators")
        stack.close()


def _run_call(
    stack: Stack, script: DemoScript | None, options: DemoOptions, out: Path, say: Narrator
) -> None:
    watch = Watcher(stack, say, script)
    caller_sid = stack.place_call()
    say.say(f"the caller dials our number (call {caller_sid})")
    deadline = time.monotonic() + options.timeout_s
    while not watch.finished():
        if time.monotonic() > deadline:
            msg = (
                f"the conversation did not finish within {options.timeout_s:.0f} s"
                f" ({watch.progress()})"
            )
            raise DemoFailed(msg)
        watch.poll()
        time.sleep(POLL_S)
    say.say("conversation over: the caller hangs up")
    watch.mark_hangup()
    stack.sim_post("twilio", "/_sim/hangup", {"party": "caller"})
    ended = _wait_call_ended(stack, watch)
    say.say(f"call ended: {ended.get('reason')} after {ended.get('duration_s')} s")
    if not stack.wait_idle(HANGUP_TIMEOUT_S):
        msg = f"the Twilio simulator still had live calls {HANGUP_TIMEOUT_S:.0f} s after hang-up"
        raise DemoFailed(msg)
    watch.poll()  # the last played/ended events
    out.mkdir(parents=True, exist_ok=True)
    stack.sim_post("twilio", "/_sim/write-wavs", {"dir": str(out)})
    say.say(f"wrote {out / 'caller-heard.wav'} and {out / 'operator-heard.wav'}")
    summary = Summary(
        stack.report("twilio"), watch.api_call(), ended, script, out, watch.call_id or ""
    )
    problems = summary.print(say)
    say.plain(f"transcript page: {stack.app_url}/calls/{watch.call_id}  (login token: {WEB_TOKEN})")
    if problems:
        msg = "; ".join(problems)
        raise DemoFailed(msg)


def _wait_call_ended(stack: Stack, watch: Watcher) -> dict[str, Any]:
    if watch.ended is not None:
        return watch.ended
    try:
        return stack.call_ended(HANGUP_TIMEOUT_S)
    except (RuntimeError, TimeoutError) as exc:
        msg = f"the daemon did not end the call after the caller hung up: {exc}"
        raise DemoFailed(msg) from exc


def _until_enter(stack: Stack, say: Narrator) -> None:
    """On a terminal, keep the page up until Enter; elsewhere (CI, a pipe) stop at once."""
    lines = keep_running_lines(stack.app_url, stack.twilio_url, stack.palabra_url, WEB_TOKEN)
    if sys.stdin.isatty():
        say.plain("")
        for line in lines:
            say.plain(line)
    wait_for_enter(
        "The daemon and simulators stay up until you press Enter "
        "(or run `callbridge demo --keep-running` to keep them up until Ctrl-C)."
    )


def _keep_running(stack: Stack, say: Narrator) -> None:
    say.plain("")
    say.plain("--keep-running: the daemon and simulators stay up; Ctrl-C stops them all.")
    for line in keep_running_lines(stack.app_url, stack.twilio_url, stack.palabra_url, WEB_TOKEN):
        say.plain(line)
    try:
        while True:
            dead = _dead_process(stack)
            if dead:
                msg = f"{dead} exited while the demo was kept running"
                raise DemoFailed(msg)
            time.sleep(0.5)
    except KeyboardInterrupt:
        say.plain("")


def _dead_process(stack: Stack) -> str | None:
    for proc in (stack.palabra, stack.twilio, stack.daemon):
        if proc is not None and proc.popen.poll() is not None:
            return f"{proc.name} (exit code {proc.popen.returncode})"
    return None


def _save_logs(workdir: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for path in workdir.glob("*.log"):
        shutil.copyfile(path, dest / path.name)


# ---- following the call --------------------------------------------------------------------------

_DAEMON_LINES: Final[Mapping[str, str]] = {
    "operator_answered": "the operator answered",
    "call_bridged": "bridged: caller and operator are connected through the translators",
}


@attrs.define
class Watcher:
    """Polls the daemon log, the Twilio report and the transcript API; narrates what is new."""

    stack: Stack
    say: Narrator
    script: DemoScript | None
    call_id: str | None = None
    bridged_at: float | None = None
    ended: dict[str, Any] | None = None
    turns: list[dict[str, Any]] = attrs.Factory(list)
    utterances: list[dict[str, Any]] = attrs.Factory(list)
    _log_seen: int = 0
    _told: set[str] = attrs.Factory(set)

    def poll(self) -> None:
        dead = _dead_process(self.stack)
        if dead:
            msg = f"{dead} died during the call; see the logs"
            raise DemoFailed(msg)
        self._daemon_log()
        if self.ended is not None and "hangup_sent" not in self._told:
            msg = f"the call ended early: {self.ended.get('reason')}"
            raise DemoFailed(msg)
        self._turns()
        if self.call_id is not None:
            self._utterances()

    def _once(self, key: str) -> bool:
        """True the first time ``key`` is told (and remembered)."""
        if key in self._told:
            return False
        self._told.add(key)
        return True

    def mark_hangup(self) -> None:
        self._told.add("hangup_sent")

    def progress(self) -> str:
        if self.bridged_at is None:
            return "the call was never bridged"
        played = sum(1 for u in self.utterances if u.get("played_at"))
        total = f" of {len(self.script.lines)}" if self.script else ""
        turns = sum(1 for t in self.turns if "ended_at" in t)
        return f"{turns}{total} turns spoken, {played} translations heard"

    def finished(self) -> bool:
        if self.bridged_at is None:
            return False
        if self.script is None:
            return time.time() - self.bridged_at >= TONE_TALK_S
        total = len(self.script.lines)
        if len(self.turns) < total or "ended_at" not in self.turns[-1]:
            return False
        played = sum(1 for u in self.utterances if u.get("played_at"))
        if played >= total:
            return True
        if time.time() - float(self.turns[-1]["ended_at"]) > LAST_TRANSLATION_WAIT_S:
            self.say.say(f"only {played} of {total} translations were heard; giving up waiting")
            return True
        return False

    # -- daemon log --

    def _daemon_log(self) -> None:
        daemon = self.stack.daemon
        assert daemon is not None
        records = daemon.records[self._log_seen :]
        self._log_seen += len(records)
        for record in records:
            self._daemon_record(record)

    def _daemon_record(self, r: Mapping[str, Any]) -> None:
        event, at = str(r.get("event")), _iso_to_epoch(r.get("ts"))
        if event == "call_started":
            self.call_id = str(r["call_id"])
            self.say.say(
                f"the daemon took the call: {self.call_id}; the caller hears the greeting", at
            )
            self.say.say(
                f"transcript page: {self.stack.app_url}/calls/{self.call_id}"
                f"  (login token: {WEB_TOKEN})",
                at,
            )
        elif event == "operator_dialed":
            self.say.say(f"dialling operator {r.get('operator')} (attempt {r.get('attempt')})", at)
        elif event == "status_callback" and r.get("role") == "operator":
            if r.get("status") == "ringing":
                self.say.say("the operator's phone is ringing", at)
        elif event == "translator_ready":
            self.say.say(f"Palabra translator ready: {r.get('direction')}", at)
        elif event in _DAEMON_LINES:
            self.say.say(_DAEMON_LINES[event], at)
            if event == "call_bridged":
                self.bridged_at = at or time.time()
        elif event == "call_ended":
            self.ended = dict(r)
        elif r.get("level") in ("warning", "error", "critical"):
            self.say.say(f"daemon {r.get('level')}: {event} {_brief(r)}", at)

    # -- Twilio phones --

    def _turns(self) -> None:
        if self.script is None:
            return
        self.turns = list(self.stack.report("twilio").get("turns", []))
        total = len(self.script.lines)
        for turn in self.turns:
            k = int(turn["turn"])
            if "started_at" in turn and self._once(f"turn{k}"):
                self.say.say(
                    f'{turn["speaker"]} says (turn {k + 1}/{total}): "{turn["text"]}"',
                    float(turn["started_at"]),
                )
            if "ended_at" in turn and self._once(f"turn{k}_end"):
                self.say.say(f"{turn['speaker']} stopped speaking", float(turn["ended_at"]))

    # -- transcript API --

    def api_call(self) -> dict[str, Any]:
        response = self.stack.http.get(
            f"{self.stack.app_url}/api/calls/{self.call_id}",
            headers={"Authorization": f"Bearer {WEB_TOKEN}"},
        )
        if response.status_code == httpx.codes.NOT_FOUND:
            return {"call": None, "utterances": []}
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _utterances(self) -> None:
        self.utterances = list(self.api_call().get("utterances", []))
        for u in self.utterances:
            self._utterance(u)

    def _utterance(self, u: Mapping[str, Any]) -> None:
        uid, speaker = u["utterance_id"], u["speaker"]
        listener = "operator" if speaker == "caller" else "caller"
        if u.get("source_text") and self._once(f"{uid}:final"):
            self.say.say(
                f'  recognised ({u.get("source_language")}): "{u["source_text"]}"',
                u.get("speech_end_at"),
            )
        if u.get("translation") and self._once(f"{uid}:translation"):
            self.say.say(
                f'  translated ({u.get("target_language")}): "{u["translation"]}"'
                f"  [{_ms(u.get('latency_ms'))} after Palabra's end of speech]",
                u.get("translated_at"),
            )
        if u.get("played_at") and self._once(f"{uid}:played"):
            self.say.say(
                f"  the {listener} has heard the whole translation"
                f"  [{_ms(u.get('played_latency_ms'))} after Palabra's end of speech]",
                u.get("played_at"),
            )


# ---- the summary ---------------------------------------------------------------------------------


@attrs.frozen
class Match:
    score: float  # normalised cross-correlation peak in the listener's recording
    wrong_score: float  # the same against the speaker's own recording (should be low)
    onset_at: float | None  # wall clock of the first loud translated sample heard


@attrs.define
class Summary:
    twilio: dict[str, Any]
    api: dict[str, Any]
    ended: dict[str, Any]
    script: DemoScript | None
    out: Path
    call_id: str

    def print(self, say: Narrator) -> list[str]:
        """Print the summary; return the problems found (empty: the demo worked)."""
        say.plain("")
        say.plain("=" * 100)
        problems = self._utterances(say)
        self._media(say)
        reason = self.ended.get("reason")
        say.plain(f"End reason: {reason} (call {self.call_id}, {self.ended.get('duration_s')} s)")
        if reason != "caller_hangup":
            problems.append(f"the call ended with {reason}, not caller_hangup")
        say.plain("")
        for line in legend_lines():
            say.plain(line)
        say.plain("=" * 100)
        return problems

    def _utterances(self, say: Narrator) -> list[str]:
        utterances = sorted(self.api.get("utterances", []), key=lambda u: u["first_seen_at"])
        if self.script is None:
            say.plain(f"Utterances ({len(utterances)}, tone mode: placeholder text):")
            for i, u in enumerate(utterances, 1):
                say.plain(
                    f"{i:3d}. {u['speaker']:<8} {u.get('source_text')!r} -> {u.get('translation')!r}"
                    f"  translated {_ms(u.get('latency_ms'))}, heard {_ms(u.get('played_latency_ms'))}"
                    " after Palabra's end of speech"
                )
            problems = [] if utterances else ["no utterance was translated"]
            return problems + self._tone_check(say)
        return self._script_utterances(say, utterances)

    def _tone_check(self, say: Narrator) -> list[str]:
        """Each listener must hear its own language's translation tone, not the other one."""
        languages = {"caller": TONE_LANGUAGES[0], "operator": TONE_LANGUAGES[1]}
        problems = []
        for listener, speaker in (("operator", "caller"), ("caller", "operator")):
            pcm = _load(self.out / f"{listener}-heard.wav").astype(np.int16)
            right, wrong = TONE_HZ[languages[listener]], TONE_HZ[languages[speaker]]
            right_db, wrong_db = tone_power_db(pcm, right), tone_power_db(pcm, wrong)
            say.plain(
                f"  {listener}-heard.wav: translation tone {right:.0f} Hz at {right_db:.1f} dBFS,"
                f" the {speaker}'s translation tone {wrong:.0f} Hz at {wrong_db:.1f} dBFS"
            )
            if right_db < wrong_db + TONE_MARGIN_DB:
                problems.append(f"the {listener} did not hear the {right:.0f} Hz translations")
        return problems

    def _script_utterances(self, say: Narrator, utterances: list[dict[str, Any]]) -> list[str]:
        assert self.script is not None
        turns = {int(t["turn"]): t for t in self.twilio.get("turns", [])}
        by_speaker: dict[str, list[dict[str, Any]]] = {"caller": [], "operator": []}
        for u in utterances:
            by_speaker.setdefault(str(u["speaker"]), []).append(u)
        recordings = {p: _load(self.out / f"{p}-heard.wav") for p in ("caller", "operator")}
        starts = {p: float(v.get("first_at") or 0.0) for p, v in self.twilio["parties"].items()}
        say.plain("Utterances (times after the speaker's phone sent the turn's last audio frame):")
        problems: list[str] = []
        seen = {"caller": 0, "operator": 0}
        for k, line in enumerate(self.script.lines):
            listener = "operator" if line.speaker == "caller" else "caller"
            nth = seen[line.speaker]
            seen[line.speaker] += 1
            u = by_speaker[line.speaker][nth] if nth < len(by_speaker[line.speaker]) else {}
            turn = turns.get(k, {})
            end = float(turn.get("ended_at") or 0.0)
            match = find_in_recording(
                _load(line.translated_audio),
                recordings[listener],
                recordings[line.speaker],
                starts[listener],
                starts[line.speaker],
                after=end,
            )
            say.plain(f"{k + 1:3d}. {line.speaker:<8} {u.get('source_text') or '(not recognised)'}")
            say.plain(f"     -> {listener:<8} {u.get('translation') or '(no translation)'}")
            say.plain("       " + _latency_line(u, end, match, listener))
            problems += _turn_problems(k, line, u, match, listener)
        return problems

    def _media(self, say: Narrator) -> None:
        media = self.ended.get("media", {})
        streams = {s["party"]: s for s in self.twilio.get("streams", [])}
        say.plain("Media per leg (20 ms mu-law frames; frames a phone sent after its leg closed")
        say.plain("are not counted by the daemon):")
        for party in ("caller", "operator"):
            leg, s = media.get(party, {}), streams.get(party, {})
            sent = s.get("messages_out", {}).get("media")
            got = s.get("messages_in", {}).get("media")
            say.plain(
                f"  {party:<8} phone sent {sent}, daemon received {leg.get('frames_in')}; "
                f"daemon sent {leg.get('frames_out')}, phone received {got} "
                f"(underrun {s.get('underrun_frames')} frames, marks {leg.get('marks_in')})"
            )


def _latency_line(u: Mapping[str, Any], end: float, match: Match, listener: str) -> str:
    def after(at: Any) -> str:
        return f"+{float(at) - end:.2f} s" if at and end else "n/a"

    return (
        f"speech end -> translation received {after(u.get('translated_at'))}"
        f" -> first translated audio heard {after(match.onset_at)}"
        f" -> heard to the end {after(u.get('played_at'))}"
        f"   [found in {listener}-heard.wav: {match.score:.2f}, wrong side {match.wrong_score:.2f}]"
    )


def _turn_problems(
    k: int, line: ScriptLine, u: Mapping[str, Any], match: Match, listener: str
) -> list[str]:
    problems = []
    if u.get("translation") != line.translated_text:
        problems.append(f"turn {k + 1}: translation {u.get('translation')!r} is not the script's")
    if match.score < MATCH_THRESHOLD or match.wrong_score >= match.score:
        problems.append(
            f"turn {k + 1}: the {listener} did not hear the translated audio "
            f"(match {match.score:.2f}, wrong side {match.wrong_score:.2f})"
        )
    return problems


# ---- audio checks --------------------------------------------------------------------------------

Signal = NDArray[np.float64]


def _load(path: Path) -> Signal:
    try:
        return read_wav_mono(path, TWILIO_RATE).astype(np.float64)
    except (OSError, ValueError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise DemoFailed(msg) from exc


def find_in_recording(
    template: Signal,
    heard: Signal,
    wrong: Signal,
    heard_start: float,
    wrong_start: float,
    *,
    after: float,
) -> Match:
    """Where ``template`` (8 kHz) occurs in ``heard`` after wall-clock ``after``, and how well.

    Recordings start at wall clock ``*_start`` (the first heard frame); the search window is
    ``after - 1 s`` .. ``after + LAST_TRANSLATION_WAIT_S`` so a repeated phrase cannot match an
    earlier turn. ``wrong`` (the speaker's own recording) gets the same search as a control.
    """
    score, lag = _match_in_pieces(template, _window(heard, heard_start, after))
    # Whole, for the control: a wrong side that heard the translation matches whole too.
    wrong_score, _ = _best_match(template, _window(wrong, wrong_start, after))
    onset = None
    if lag is not None:
        begin = max(heard_start, after - 1.0)
        onset = begin + (lag + _first_loud(template)) / TWILIO_RATE
    return Match(score, wrong_score, onset)


def _window(signal_: Signal, start: float, after: float) -> Signal:
    lo = max(0, int((after - 1.0 - start) * TWILIO_RATE))
    hi = max(lo, int((after + LAST_TRANSLATION_WAIT_S - start) * TWILIO_RATE))
    return signal_[lo:hi]


MATCH_PIECES = 8  # a translation is looked for in this many pieces


def _match_in_pieces(template: Signal, x: Signal) -> tuple[float, int | None]:
    """How well ``template`` is found in ``x``: the mean of its pieces' best matches (pieces
    too quiet to match are left out), and where its first piece was found.

    Matched whole, one 20 ms playout gap in the middle of a translation (a busy machine's
    scheduling hiccup) shifts half of it and halves the score, though the listener heard every
    word. In pieces, it costs only the piece it falls in."""
    size = len(template) // MATCH_PIECES
    loudest = max(
        (
            float(template[i : i + size] @ template[i : i + size])
            for i in range(0, len(template) - size + 1, size)
        ),
        default=0.0,
    )
    scores: list[float] = []
    first_lag: int | None = None
    for k in range(MATCH_PIECES):
        piece = template[k * size : (k + 1) * size]
        if size == 0 or float(piece @ piece) < 1e-2 * loudest:
            continue
        score, lag = _best_match(piece, x)
        scores.append(score)
        if first_lag is None and lag is not None:
            first_lag = lag - k * size
    if not scores:
        return _best_match(template, x)
    return float(np.mean(scores)), first_lag


def _best_match(template: Signal, x: Signal) -> tuple[float, int | None]:
    """Peak normalised cross-correlation of ``template`` sliding over ``x`` (FFT), and its lag."""
    n = len(template)
    if n == 0 or len(x) < n or not np.any(template):
        return 0.0, None
    size = 1 << (len(x) + n - 1).bit_length()
    spectrum = np.fft.rfft(x, size) * np.conj(np.fft.rfft(template, size))
    corr = np.fft.irfft(spectrum, size)[: len(x) - n + 1]
    energy = np.concatenate(([0.0], np.cumsum(x * x)))
    window_energy = energy[n:] - energy[:-n]
    # Near-silent windows would divide noise by nothing; they cannot hold speech anyway.
    usable = window_energy > 1e-3 * float(window_energy.max(initial=0.0))
    if not usable.any():
        return 0.0, None
    scores = np.where(
        usable, corr / np.sqrt(np.maximum(window_energy, 1e-9) * float(template @ template)), 0.0
    )
    lag = int(np.argmax(scores))
    return float(scores[lag]), lag


def _first_loud(pcm: Signal, frame: int = TWILIO_RATE // 50) -> int:
    frames = len(pcm) // frame
    if frames == 0:
        return 0
    rms = np.sqrt((pcm[: frames * frame].reshape(frames, frame) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > LOUD_RMS)
    return int(loud[0]) * frame if loud.size else 0


# ---- small helpers -------------------------------------------------------------------------------


def _iso_to_epoch(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _ms(value: Any) -> str:
    return f"{float(value) / 1000:.2f} s" if isinstance(value, int | float) else "n/a"


def _brief(record: Mapping[str, Any], skip: Sequence[str] = ("event", "ts", "level")) -> str:
    text = json.dumps({k: v for k, v in record.items() if k not in skip}, ensure_ascii=False)
    return text if len(text) < 200 else text[:197] + "..."
