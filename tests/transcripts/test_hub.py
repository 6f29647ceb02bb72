"""TranscriptHub: what the call code publishes is stored, broadcast and replayed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
import trio
from structlog.testing import capture_logs

from callbridge.records import CallRecord
from callbridge.transcripts import TranscriptEvent, TranscriptHub, open_transcript_hub
from callbridge.transcripts.hub import Feed

from .helpers import event, make_config, make_record, utterance_events

API_CALL_KEYS = {
    "id", "caller_sid", "operator_sid", "caller_number", "operator_number", "caller_language",
    "operator_language", "status", "received_at", "answered_at", "ended_at", "end_reason",
}  # fmt: skip


def messages(feed: Feed) -> list[dict[str, Any]]:
    """Initial items plus whatever is queued right now, decoded."""
    items = list(feed.initial)
    while True:
        try:
            items.append(feed.receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return [orjson.loads(item.payload) for item in items]


async def run_call(hub: TranscriptHub, record: CallRecord) -> None:
    hub.call_updated(record)
    for e in utterance_events("u1", "hello there", "hola", call_id=record.id):
        hub.publish(e)


class TestPublish:
    async def test_an_utterance_is_stored_once_final_and_completed_by_later_pieces(
        self, tmp_path: Path
    ) -> None:
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path)) as hub:
                await run_call(hub, make_record())
                found = await hub.get_call("call-1")
        assert found is not None
        [row] = found["utterances"]
        assert row["speaker"] == "caller" and row["direction"] == "caller_to_operator"
        assert (row["source_language"], row["source_text"]) == ("en", "hello there")
        assert (row["target_language"], row["translation"]) == ("es", "hola")
        assert (row["speech_end_at"], row["translated_at"], row["played_at"]) == (
            1001.0,
            1001.8,
            1002.5,
        )
        assert row["latency_ms"] == 800

    async def test_partials_reach_pages_but_not_the_store(self, tmp_path: Path) -> None:
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path)) as hub:
                hub.call_updated(make_record())
                async with hub.open_feed("call-1", None) as feed:
                    hub.publish(event("partial", "u1", "hel"))
                    hub.publish(event("translation_partial", "u1", "ho"))
                    got = messages(feed)
                    stored = await hub.get_call("call-1")
        assert [m.get("kind") for m in got] == [None, "partial", "translation_partial"]
        assert got[1]["text"] == "hel" and got[1]["speaker"] == "caller"
        assert stored is not None and stored["utterances"] == []

    async def test_bad_events_are_logged_and_counted_never_raised(self, tmp_path: Path) -> None:
        bad = [
            TranscriptEvent("call-1", "bogus", None, "u", "", None, 1.0),  # type: ignore[arg-type]
            TranscriptEvent("call-1", "final", None, None, "x", "en", 1.0),
            TranscriptEvent("call-1", "call", None, None, "", None, 1.0, {"id": "other"}),
        ]
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path)) as hub:
                hub.call_updated(make_record())
                with capture_logs() as logs:
                    for e in bad:
                        hub.publish(e)
                hub.publish(event("final", "u1", "still works"))
                found = await hub.get_call("call-1")
        assert hub.stats.rejected == 3
        assert [entry["event"] for entry in logs] == ["transcript_event_rejected"] * 3
        assert found is not None and found["utterances"][0]["source_text"] == "still works"

    async def test_publish_after_close_is_ignored(self, tmp_path: Path) -> None:
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path)) as hub:
                pass
        hub.publish(event("final", "u1", "late"))
        hub.call_updated(make_record())
        assert hub.stats.after_close == 2

    async def test_a_slow_page_never_slows_publishing(self, tmp_path: Path) -> None:
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path, subscriber_queue=8)) as hub:
                hub.call_updated(make_record())
                async with hub.open_feed("call-1", None) as slow, hub.open_feed(None, None):
                    for i in range(100):
                        hub.publish(event("partial", f"u{i}", "x"))
                    assert len(messages(slow)) == 1 + 8  # snapshot, then what fitted
                    assert hub.broadcaster.stats.dropped_subscribers == 1
                    assert hub.broadcaster.subscriber_count() == 1  # the all-calls page stays


class TestCalls:
    async def test_active_and_recent_calls_newest_first_with_api_fields(
        self, tmp_path: Path
    ) -> None:
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path, recent_calls=2)) as hub:
                now = time.time()
                for i in range(4):
                    hub.call_updated(
                        make_record(f"old{i}", status="ended", received_at=now - 60 + i)
                    )
                hub.call_updated(make_record("live", status="connected", received_at=now - 100))
                assert [c["id"] for c in hub.active_calls()] == ["live"]
                calls = await hub.list_calls()
        assert [c["id"] for c in calls] == ["old3", "old2", "live"]
        assert all(set(c) >= API_CALL_KEYS for c in calls)
        assert [c["active"] for c in calls] == [False, False, True]

    async def test_history_survives_a_restart(self, tmp_path: Path) -> None:
        config = make_config(tmp_path)
        with trio.fail_after(10):
            async with open_transcript_hub(config) as hub:
                await run_call(hub, make_record(status="connected"))
            async with open_transcript_hub(config) as hub:
                calls = await hub.list_calls()
                async with hub.open_feed("call-1", None) as feed:
                    [snapshot] = messages(feed)
        assert calls[0]["id"] == "call-1"
        assert calls[0]["end_reason"] == "interrupted"  # the old process never ended it
        assert snapshot["type"] == "snapshot"
        assert [u["source_text"] for u in snapshot["utterances"]] == ["hello there"]

    async def test_old_calls_are_pruned_when_the_hub_opens(self, tmp_path: Path) -> None:
        config = make_config(tmp_path, retention_days=1)
        with trio.fail_after(10):
            async with open_transcript_hub(config) as hub:
                hub.call_updated(
                    make_record("ancient", status="ended", received_at=1.0, ended_at=2.0)
                )
            async with open_transcript_hub(config) as hub:
                assert await hub.get_call("ancient") is None


class TestFeeds:
    async def test_first_connection_gets_a_snapshot_with_partials(self, tmp_path: Path) -> None:
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path, heartbeat_s=7)) as hub:
                hub.call_updated(make_record())
                hub.publish(event("final", "u1", "done"))
                hub.publish(event("partial", "u2", "in progr"))
                async with hub.open_feed("call-1", "garbage-id") as feed:
                    [snapshot] = messages(feed)
        assert snapshot["type"] == "snapshot" and snapshot["heartbeat_s"] == 7
        assert snapshot["call"]["id"] == "call-1"
        u1, u2 = snapshot["utterances"]
        assert (u1["source_text"], u2["source_text"], u2["source_partial"]) == (
            "done",
            None,
            "in progr",
        )

    async def test_reconnecting_with_the_last_id_replays_only_what_was_missed(
        self, tmp_path: Path
    ) -> None:
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path)) as hub:
                hub.call_updated(make_record())
                async with hub.open_feed("call-1", None) as feed:
                    hub.publish(event("partial", "u1", "he"))
                    seen = feed.receive.receive_nowait()
                    last_id = feed.event_id(seen)
                hub.publish(event("final", "u1", "hello"))
                hub.publish(event("translation", "u1", "hola"))
                async with hub.open_feed("call-1", last_id) as again:
                    replayed = messages(again)
        assert [m["kind"] for m in replayed] == ["final", "translation"]

    async def test_all_calls_feed_carries_only_call_events(self, tmp_path: Path) -> None:
        with trio.fail_after(10):
            async with (
                open_transcript_hub(make_config(tmp_path)) as hub,
                hub.open_feed(None, None) as feed,
            ):
                await run_call(hub, make_record())
                got = messages(feed)
        assert got[0]["type"] == "snapshot" and got[0]["calls"] == []
        assert [m["kind"] for m in got[1:]] == ["call"]

    async def test_closing_the_hub_ends_open_feeds(self, tmp_path: Path) -> None:
        with trio.fail_after(10):
            async with open_transcript_hub(make_config(tmp_path)) as hub:
                cm = hub.open_feed("call-1", None)
                feed = await cm.__aenter__()
            async for _ in feed.receive:
                raise AssertionError("no events were published")
            await cm.__aexit__(None, None, None)


def test_store_file_is_under_state_dir(tmp_path: Path) -> None:
    async def main() -> None:
        async with open_transcript_hub(make_config(tmp_path / "state")) as hub:
            hub.call_updated(make_record())

    trio.run(main)
    with sqlite3.connect(tmp_path / "state" / "transcripts.sqlite3") as conn:
        assert conn.execute("SELECT id FROM calls").fetchall() == [("call-1",)]
