"""Where the daemon's CPU goes: a py-spy sample of one step's window, folded into stages.

py-spy (https://github.com/benfred/py-spy) samples the running daemon from outside
(``--nonblocking``: the daemon is never paused) and writes collapsed stacks ("raw" format: one
``frame;frame;... count`` line per distinct stack), which speedscope (https://www.speedscope.app)
and flamegraph tools open as they are. Each sample's *innermost* frame decides its stage (self
time): the trio runtime, the web stack, resampling, and so on (:data:`STAGES`). Native code
called from Python (libsamplerate, orjson, numpy) has no frame of its own and counts where it
was called from, which is why resampling is recognised by our resampler module.

py-spy counts a sample in ``epoll_wait`` as busy even when the loop is idle, so trio's I/O poll
is shown on a line of its own and left out of the shares of the busy stages.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

__all__ = ["POLL_STAGE", "STAGES", "WindowProfile", "stage_of", "stage_shares", "start_pyspy"]

POLL_STAGE = "trio I/O poll (epoll_wait, mostly idle)"
# (stage, pattern on the innermost frame's file path or name); first match wins.
STAGES: tuple[tuple[str, str], ...] = (
    (POLL_STAGE, r"get_events \(trio/_core/_io_epoll"),
    ("resampling (libsamplerate)", r"samplerate|callbridge/audio/resample"),
    ("transcript store and hub", r"callbridge/transcripts/"),
    ("logging (structlog)", r"structlog/|/logging/|callbridge/log"),
    ("json / base64", r"json/|base64|binascii|orjson"),
    ("numpy (mu-law, mixing, levels)", r"numpy/"),
    ("hypercorn / quart / wsproto / h11", r"hypercorn/|quart|wsproto/|h11/|werkzeug/|flask/"),
    ("trio-websocket (Palabra link)", r"trio_websocket/"),
    ("httpx / httpcore / anyio (REST)", r"httpx/|httpcore/|anyio/|sniffio/"),
    (
        "trio runtime (scheduler, cancel scopes, channels, sockets)",
        r"trio/|outcome/|contextlib|_weakrefset|abc>",
    ),
    ("callbridge (own code)", r"callbridge/"),
)
_FILE = re.compile(r"\(([^()]*?):\d+\)$")


def start_pyspy(
    pid: int, seconds: float, out: Path, rate_hz: int = 100
) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` for ``seconds`` into ``out`` (collapsed stacks); None without py-spy."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("py-spy is missing (pip install -e '.[bench]'): no profile taken")
        return None
    argv = [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate_hz),
            "-f", "raw", "-o", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stage_of(leaf: str) -> str:
    """The stage of one innermost frame, e.g. ``process (samplerate/__init__.py:12)``."""
    for stage, pattern in STAGES:
        if re.search(pattern, leaf):
            return stage
    return "other (stdlib, attrs, ...)"


def stage_shares(raw: Path) -> tuple[int, dict[str, float]]:
    """Samples and each stage's share in % of the busy samples (the poll line: of all)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stage_of(stack.split(";")[-1])] += int(count)
    total = sum(counts.values())
    busy = total - counts[POLL_STAGE]
    shares = {
        stage: round(100 * n / max(busy, 1), 1)
        for stage, n in counts.most_common()
        if stage != POLL_STAGE
    }
    shares[POLL_STAGE] = round(100 * counts[POLL_STAGE] / max(total, 1), 1)
    return total, shares


@attrs.define
class WindowProfile:
    """Samples ``pid`` through one measurement window: call it as the window opens (it starts
    py-spy, placed by ``place``), then :meth:`finish` after the window for the stage shares."""

    pid: int
    out: Path
    place: Callable[[int], object] = lambda pid: None
    _proc: subprocess.Popen[bytes] | None = None

    def __call__(self, seconds: float) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._proc = start_pyspy(self.pid, max(1.0, seconds - 1), self.out)
        if self._proc is not None:
            self.place(self._proc.pid)

    def finish(self, calls: int, timeout_s: float) -> dict[str, Any] | None:
        if self._proc is None:
            return None
        self._proc.wait(timeout=timeout_s)
        if not self.out.exists():
            return None
        samples, stages = stage_shares(self.out)
        mode = "record --nonblocking, 100 Hz, raw (collapsed stacks)"
        return {"calls": calls, "samples": samples, "mode": mode, "speedscope": self.out.name,
                "stages": stages}  # fmt: skip
