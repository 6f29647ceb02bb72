"""Run the real daemon and both simulators as separate processes on loopback.

Used by the end-to-end tests and by ``callbridge demo``. Each process's stdout is one JSON object
per line; a reader thread per process collects them, so tests can assert on the daemon's own log
(``call_ended`` reasons, warnings) as well as on the simulators' reports.

Resource handling: ``Stack`` is a context manager; on exit every process gets SIGTERM, then
SIGKILL after a bounded wait, and every reader thread ends with its pipe.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
import httpx

__all__ = [
    "ACCOUNT_SID",
    "AUTH_TOKEN",
    "PALABRA_KEY",
    "Process",
    "Stack",
    "StackOptions",
    "free_port",
]

ACCOUNT_SID = "AC" + "5e" * 16
AUTH_TOKEN = "sim-twilio-auth-token"
PALABRA_KEY = "sim-palabra-api-key"
OUR_NUMBER = "+15550100000"
OPERATORS = ("+15550200001", "+15550200002")
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the daemon's port must be known before it starts,
    because the Twilio simulator is told where to send webhooks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class Process:
    """A child process whose stdout lines are parsed as JSON into ``records``."""

    name: str
    popen: subprocess.Popen[str]
    records: list[dict[str, Any]] = attrs.Factory(list)
    raw: list[str] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _thread: threading.Thread | None = None

    @classmethod
    def start(
        cls, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_dir: Path
    ) -> Process:
        stderr = (log_dir / f"{name}.stderr.log").open("w", encoding="utf-8")
        popen = subprocess.Popen(
            [sys.executable, "-m", "callbridge", *argv],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=dict(env),
            cwd=cwd,
        )
        stderr.close()
        proc = cls(name, popen)
        proc._thread = threading.Thread(
            target=proc._read, args=(log_dir / f"{name}.log",), daemon=True
        )
        proc._thread.start()
        return proc

    def _read(self, path: Path) -> None:
        assert self.popen.stdout is not None
        with path.open("w", encoding="utf-8") as out:
            for line in self.popen.stdout:
                out.write(line)
                out.flush()
                with self._lock:
                    self.raw.append(line)
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        self.records.append(record)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any]:
        """The first record matching ``predicate``; raises if the process dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            with self._lock:
                fresh = self.records[seen:]
            for record in fresh:
                if predicate(record):
                    return record
            seen += len(fresh)
            if self.popen.poll() is not None and not fresh:
                msg = f"{self.name} exited with {self.popen.returncode}; last output: {''.join(self.raw[-20:])}"
                raise RuntimeError(msg)
            time.sleep(0.02)
        msg = f"{self.name}: nothing matched within {timeout_s} s; last output: {''.join(self.raw[-20:])}"
        raise TimeoutError(msg)

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if r.get("event") == name]

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()  # the reader hit EOF; an open pipe is a ResourceWarning
        return self.popen.returncode


@attrs.define
class StackOptions:
    workdir: Path
    # Options of ``callbridge sim palabra`` (e.g. ``--detect-language ru``) and ``sim twilio``.
    palabra_args: Sequence[str] = ()
    twilio_args: Sequence[str] = ()
    # Extra TOML appended to the daemon's config: whole sections not already written by
    # ``Stack._config_toml`` (server, twilio, operators, languages, palabra, prompts.*).
    config_toml: str = ""
    # Short prompts keep simulated calls short (the simulator "says" 60 ms per character).
    greeting: str = "Please hold."
    operator_intro: str = "Translated call."
    daemon_env: Mapping[str, str] = attrs.Factory(dict)
    operators: Sequence[str] = OPERATORS
    web_token: str = "sim-web-token"
    caller_language: str = "en"
    operator_language: str = "es"
    # More [languages] keys, as TOML lines (menu, caller_detectable, ...): ``by_prefix`` and
    # ``[[operators.team]]`` tables go in ``config_toml``.
    languages_toml: str = ""
    # Greetings in more languages (a caller who chose Spanish hears the ``es`` one).
    greetings: Mapping[str, str] = attrs.Factory(dict)
    log_format: str = "json"
    # How many daemons to run (load tests of several processes; a caller picks one with the
    # Twilio simulator's per-call ``app_url``). Each has its own port, config and state dir.
    daemons: int = 1


class Stack:
    """Palabra simulator, Twilio simulator and ``callbridge serve``, wired to each other."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.app_ports = [free_port() for _ in range(max(1, options.daemons))]
        self.app_urls = [f"http://127.0.0.1:{port}" for port in self.app_ports]
        self.app_port, self.app_url = self.app_ports[0], self.app_urls[0]
        self.palabra: Process | None = None
        self.twilio: Process | None = None
        self.daemon: Process | None = None  # the first of ``daemons``
        self.daemons: list[Process] = []
        self._retired: list[Process] = []  # daemons that were restarted
        self._daemon_env: dict[str, str] = {}
        self.palabra_url = ""
        self.twilio_url = ""
        self.http = httpx.Client(timeout=30)

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- start-up --------------------------------------------------------------------------------

    def start(self) -> None:
        opts = self.options
        opts.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for leaky in ("HOST", "PORT", "TWILIO_NUMBER", "OPERATOR_NUMBER", "TWILIO_ACCOUNT_SID"):
            env.pop(leaky, None)
        self.palabra = Process.start(
            "palabra-sim",
            [
                "sim",
                "palabra",
                "--port",
                "0",
                "--api-key",
                PALABRA_KEY,
                "--log-format",
                "json",
                *opts.palabra_args,
            ],
            env,
            opts.workdir,
            opts.workdir,
        )
        self.palabra_url = self.palabra.wait_for(_ready, START_TIMEOUT_S)["url"]
        self.twilio = Process.start(
            "twilio-sim",
            [
                "sim",
                "twilio",
                "--port",
                "0",
                "--app-url",
                self.app_url,
                "--account-sid",
                ACCOUNT_SID,
                "--auth-token",
                AUTH_TOKEN,
                "--to",
                OUR_NUMBER,
                "--log-format",
                "json",
                *opts.twilio_args,
            ],
            env,
            opts.workdir,
            opts.workdir,
        )
        self.twilio_url = self.twilio.wait_for(_ready, START_TIMEOUT_S)["url"]
        self._daemon_env = {
            **env,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "PALABRA_API_KEY": PALABRA_KEY,
            "CALLBRIDGE_WEB_TOKEN": opts.web_token,
            **opts.daemon_env,
        }
        for index in range(len(self.app_ports)):
            suffix = f"-{index}" if index else ""
            config = opts.workdir / f"callbridge{suffix}.toml"
            config.write_text(self._config_toml(index), encoding="utf-8")
            self.daemons.append(self._start_daemon(f"callbridge{suffix}", config))
        self.daemon = self.daemons[0]
        for daemon in self.daemons:
            daemon.wait_for(lambda r: r.get("event") == "listening", START_TIMEOUT_S)

    def _start_daemon(self, name: str, config: Path) -> Process:
        opts = self.options
        return Process.start(
            name,
            ["--log-format", opts.log_format, "serve", "--config", str(config)],
            self._daemon_env, opts.workdir, opts.workdir,
        )  # fmt: skip

    # ---- the daemon's death and rebirth ---------------------------------------------------------

    def kill_daemon(self, index: int) -> None:
        """SIGKILL daemon ``index`` (a crash: nothing is cleaned up) and reap it."""
        daemon = self.daemons[index]
        daemon.popen.kill()
        daemon.stop()  # reaped; its reader thread ends with the pipe

    def restart_daemon(self, index: int) -> Process:
        """Start daemon ``index`` again on its port, config and state dir, once the previous
        process has exited (``kill_daemon``, or a signal the test sent); returns it listening.
        Its log goes to ``callbridge[-N]-restartK.log``: the earlier one is kept."""
        old = self.daemons[index]
        old.stop()
        suffix = f"-{index}" if index else ""
        restarts = sum(1 for p in self._retired if p.name.startswith(f"callbridge{suffix}"))
        self._retired.append(old)
        config = self.options.workdir / f"callbridge{suffix}.toml"
        daemon = self._start_daemon(f"callbridge{suffix}-restart{restarts + 1}", config)
        self.daemons[index] = daemon
        if index == 0:
            self.daemon = daemon
        daemon.wait_for(lambda r: r.get("event") == "listening", START_TIMEOUT_S)
        return daemon

    def _config_toml(self, index: int = 0) -> str:
        opts = self.options
        palabra_ws = self.palabra_url.replace("http://", "ws://")
        numbers = ", ".join(json.dumps(n) for n in opts.operators)
        state = json.dumps(str(opts.workdir / (f"state-{index}" if index else "state")))
        # "auto" is no prompt language: its callers hear English until they are detected.
        said = "en" if opts.caller_language == "auto" else opts.caller_language
        greetings = "\n".join(
            f"{json.dumps(lang)} = {json.dumps(text)}"
            for lang, text in {said: opts.greeting, **opts.greetings}.items()
        )
        return f"""
[server]
host = "127.0.0.1"
port = {self.app_ports[index]}
public_url = "{self.app_urls[index]}"
state_dir = {state}
shutdown_grace_s = 2.0

[twilio]
account_sid = "{ACCOUNT_SID}"
number = "{OUR_NUMBER}"
api_base_url = "{self.twilio_url}"

[operators]
numbers = [{numbers}]
ring_timeout_s = 10

[languages]
caller = "{opts.caller_language}"
operator = "{opts.operator_language}"
{opts.languages_toml}

[palabra]
api_base_url = "{self.palabra_url}"
streaming_url = "{palabra_ws}/streaming-api/{{random_hash}}/v1/speech-to-speech/stream"
segment_confirmation_silence_threshold = 0.5

[prompts.greeting]
{greetings}

[prompts.operator_intro]
{opts.operator_language} = {json.dumps(opts.operator_intro)}
{opts.config_toml}
"""

    # ---- talking to the simulators --------------------------------------------------------------

    def sim_post(self, which: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        url = (self.twilio_url if which == "twilio" else self.palabra_url) + path
        response = self.http.post(url, json=dict(body or {}))
        response.raise_for_status()
        return response.json() if response.content else None

    def report(self, which: str) -> Any:
        url = (self.twilio_url if which == "twilio" else self.palabra_url) + "/_sim/report"
        response = self.http.get(url)
        response.raise_for_status()
        return response.json()

    def place_call(self, **caller: Any) -> str:
        """The simulated caller dials our number now; returns the caller's CallSid. ``caller``
        overrides the scenario's caller: ``from`` (the number), ``menu_digits`` (the key pressed
        at each ``<Gather>``), ``hangup_at_s``, ..."""
        sid: str = self.sim_post("twilio", "/_sim/call", caller)["call_sid"]
        return sid

    def press_keys(self, digits: str, party: str = "caller", gap_s: float = 0.3) -> None:
        """``party`` presses ``digits`` now: ``dtmf`` messages on their live media stream."""
        self.sim_post("twilio", "/_sim/dtmf", {"party": party, "digits": digits, "gap_s": gap_s})

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait until the Twilio simulator has no live call and no callback in flight."""
        idle: bool = self.sim_post("twilio", "/_sim/wait-idle", {"timeout_s": timeout_s})["idle"]
        return idle

    def call_ended(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """The daemon's next ``call_ended`` summary line."""
        assert self.daemon is not None
        return self.daemon.wait_for(lambda r: r.get("event") == "call_ended", timeout_s)

    def close(self) -> None:
        for proc in (*self.daemons, self.twilio, self.palabra):
            if proc is not None:
                proc.stop()
        self.http.close()


def _ready(record: Mapping[str, Any]) -> bool:
    return record.get("event") == "sim_ready"
