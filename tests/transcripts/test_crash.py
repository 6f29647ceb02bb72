"""kill -9 during a call loses at most the last second of transcript."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from callbridge.transcripts.store import TranscriptStore

CHILD = Path(__file__).with_name("crash_writer.py")
RUN_S = 2.0


async def read_call(state_dir: Path) -> dict[str, Any] | None:
    store = TranscriptStore.at(state_dir)
    store.start()
    try:
        with trio.fail_after(10):
            return await store.get_call("crash")
    finally:
        await store.close()


def test_sigkill_loses_at_most_the_last_second(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    published: list[tuple[int, float]] = []
    with subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            if line.startswith("PUB "):
                _, n, at = line.split()
                published.append((int(n), float(at)))
                if published[-1][1] - published[0][1] >= RUN_S:
                    break
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(published) > 20, "the child did not publish"

    found = trio.run(read_call, tmp_path)
    assert found is not None
    stored = {int(u["source_text"]) for u in found["utterances"]}
    must_have = {n for n, at in published if at <= killed_at - 1.0}
    assert must_have, "the run was too short to test anything"
    assert must_have <= stored, f"lost: {sorted(must_have - stored)}"
    # What is stored is a prefix: the writer commits in order, nothing in the middle is lost.
    assert stored == set(range(1, len(stored) + 1))
    assert found["call"]["end_reason"] == "interrupted"
