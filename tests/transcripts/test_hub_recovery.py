"""Restart recovery and a failing store, as the hub exposes them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio
from structlog.testing import capture_logs

from callbridge.transcripts import hub as hub_module
from callbridge.transcripts import open_transcript_hub
from callbridge.transcripts.store import _Barrier

from .helpers import make_config, make_record


async def test_live_calls_are_left_for_recovery_then_closed_and_shown_ended(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    with trio.fail_after(10):
        async with open_transcript_hub(config) as hub:
            hub.call_updated(make_record("live", status="connected", operator_sid="CAop"))
        async with open_transcript_hub(config, close_interrupted=False) as hub:
            live = await hub.store.own_live_calls()
            assert [(c["id"], c["operator_sid"]) for c in live] == [("live", "CAop")]
            async with hub.open_feed(None, None) as feed:
                hub.close_calls(live, "interrupted")
                [_snapshot, item] = [*feed.initial, feed.receive.receive_nowait()]
            found = await hub.get_call("live")
            assert await hub.store.own_live_calls() == []
    message = orjson.loads(item.payload)
    assert (message["kind"], message["data"]["status"]) == ("call", "ended")
    assert found is not None
    assert (found["call"]["status"], found["call"]["end_reason"]) == ("ended", "interrupted")


async def test_a_dead_store_writer_is_logged_once_by_the_watchdog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "_STORE_CHECK_S", 0.05)

    def boom() -> None:
        raise RuntimeError("disk on fire")

    with trio.fail_after(10), capture_logs() as logs:
        async with open_transcript_hub(make_config(tmp_path, store_timeout_s=1.0)) as hub:
            hub.store._queue.put(_Barrier(boom))
            while sum(e["event"] == "store_unhealthy" for e in logs) == 0:
                await trio.sleep(0.01)
            await trio.sleep(0.2)  # several more checks: still one log line
    unhealthy = [e for e in logs if e["event"] == "store_unhealthy"]
    assert len(unhealthy) == 1
    assert "disk on fire" in unhealthy[0]["error"]
