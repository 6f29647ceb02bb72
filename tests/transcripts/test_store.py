"""TranscriptStore: SQLite writes off the loop, merged utterance rows, durability, retention."""

from __future__ import annotations

import functools
import queue
import threading
import time
from pathlib import Path

import pytest
import trio

from callbridge.transcripts.store import TranscriptStore, _Barrier

from .helpers import make_record


def utterance_row(utterance_id: str, **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "call_id": "call-1",
        "utterance_id": utterance_id,
        "direction": "caller_to_operator",
        "speaker": "caller",
        "first_seen_at": 100.0,
    }
    row.update(fields)
    return row


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = TranscriptStore.at(tmp_path)
    store.start()
    try:
        yield store
    finally:
        await store.close()


def _wait(event: threading.Event) -> None:
    event.wait()


class TestWrites:
    async def test_pieces_of_an_utterance_merge_in_any_order(self, store: TranscriptStore) -> None:
        """played, then translation, then final: the row ends with all three, nothing erased."""
        with trio.fail_after(10):
            store.save_call(make_record().snapshot())
            store.save_utterance(utterance_row("u1", played_at=103.0))
            store.save_utterance(
                utterance_row("u1", translation="hola", target_language="es", translated_at=102.0)
            )
            store.save_utterance(
                utterance_row("u1", source_text="hello", source_language="en", speech_end_at=101.0)
            )
            found = await store.get_call("call-1")
        assert found is not None
        assert found["call"]["caller_language"] == "en"
        [row] = found["utterances"]
        assert (row["source_text"], row["translation"], row["played_at"]) == (
            "hello",
            "hola",
            103.0,
        )
        assert (row["speech_end_at"], row["translated_at"]) == (101.0, 102.0)

    async def test_call_updates_replace_the_record(self, store: TranscriptStore) -> None:
        with trio.fail_after(10):
            store.save_call(make_record().snapshot())
            store.save_call(
                make_record(status="ended", ended_at=5.0, end_reason="hangup").snapshot()
            )
            found = await store.get_call("call-1")
        assert found is not None
        assert (found["call"]["status"], found["call"]["end_reason"]) == ("ended", "hangup")

    async def test_a_bad_write_costs_only_itself(self, store: TranscriptStore) -> None:
        """A row violating NOT NULL is dropped and counted; its batch neighbours are kept."""
        with trio.fail_after(10):
            store.save_utterance(utterance_row("good-1", source_text="a"))
            store.save_utterance(utterance_row("bad", first_seen_at=None))
            store.save_utterance(utterance_row("good-2", source_text="b"))
            found = await store.get_call("call-1")
        assert found is not None
        assert [u["utterance_id"] for u in found["utterances"]] == ["good-1", "good-2"]
        assert store.stats.failed_writes == 1

    async def test_full_queue_drops_instead_of_blocking(self, tmp_path: Path) -> None:
        """With the writer stuck, writes beyond the queue's size are dropped and counted."""
        release = threading.Event()
        store = TranscriptStore(path=tmp_path / "t.sqlite3", queue=queue.Queue(3))
        store.start()
        try:
            store._queue.put(_Barrier(functools.partial(_wait, release)))  # blocks the writer
            while not store._queue.empty():
                time.sleep(0.001)
            started = time.monotonic()
            for i in range(10):
                store.save_utterance(utterance_row(f"u{i}"))
            assert time.monotonic() - started < 0.5
            assert (store.stats.queued, store.stats.dropped) == (3, 7)
        finally:
            release.set()
            with trio.fail_after(10):
                await store.close()

    def test_writing_to_a_stopped_store_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(RuntimeError, match="not running"):
            TranscriptStore.at(tmp_path).save_call(make_record().snapshot())


class TestDurability:
    async def test_clean_close_loses_nothing(self, tmp_path: Path) -> None:
        store = TranscriptStore.at(tmp_path)
        store.start()
        store.save_call(make_record().snapshot())
        for i in range(3000):
            store.save_utterance(
                utterance_row(f"u{i:04d}", source_text=str(i), first_seen_at=float(i))
            )
        with trio.fail_after(20):
            await store.close()
            reopened = TranscriptStore.at(tmp_path)
            reopened.start()
            try:
                found = await reopened.get_call("call-1")
            finally:
                await reopened.close()
        assert found is not None
        assert len(found["utterances"]) == 3000
        assert reopened.stats.dropped == 0

    async def test_calls_left_open_by_a_dead_process_are_closed_on_start(
        self, tmp_path: Path
    ) -> None:
        first = TranscriptStore.at(tmp_path)
        first.start()
        first.save_call(make_record("live", status="connected").snapshot())
        first.save_call(
            make_record("done", status="ended", end_reason="hangup", ended_at=9.0).snapshot()
        )
        with trio.fail_after(10):
            await first.close()
            second = TranscriptStore.at(tmp_path)
            second.start()
            try:
                live, done = await second.get_call("live"), await second.get_call("done")
            finally:
                await second.close()
        assert live is not None and done is not None
        assert (live["call"]["status"], live["call"]["end_reason"]) == ("ended", "interrupted")
        assert live["call"]["ended_at"] is not None
        assert done["call"]["end_reason"] == "hangup"


class TestRetention:
    async def test_prune_removes_old_ended_calls_and_their_utterances(
        self, store: TranscriptStore
    ) -> None:
        now = 10 * 86_400.0
        old = make_record(
            "old", status="ended", received_at=now - 40 * 86_400, ended_at=now - 31 * 86_400
        )
        recent = make_record(
            "recent", status="ended", received_at=now - 2 * 86_400, ended_at=now - 86_400
        )
        # Still running after 40 days is odd, but a live call is never pruned under its feet.
        running = make_record("running", status="connected", received_at=now - 40 * 86_400)
        with trio.fail_after(10):
            for record in (old, recent, running):
                store.save_call(record.snapshot())
                store.save_utterance(utterance_row("u1", call_id=record.id, source_text="x"))
            store.save_utterance(
                utterance_row("orphan", call_id="nocall", first_seen_at=now - 40 * 86_400)
            )
            store.prune(30, now=now)
            assert await store.get_call("old") is None
            assert await store.get_call("nocall") is None
            kept = await store.get_call("recent")
            live = await store.get_call("running")
        assert kept is not None and len(kept["utterances"]) == 1
        assert live is not None
        assert store.stats.pruned_calls == 1


class TestReads:
    async def test_list_calls_active_first_then_recent_limited(
        self, store: TranscriptStore
    ) -> None:
        with trio.fail_after(10):
            for i in range(5):
                store.save_call(
                    make_record(f"ended{i}", status="ended", received_at=100.0 + i).snapshot()
                )
            store.save_call(make_record("active", status="connected", received_at=50.0).snapshot())
            calls = await store.list_calls(recent=3)
        assert [c["id"] for c in calls] == ["active", "ended4", "ended3", "ended2"]
