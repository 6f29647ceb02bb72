"""TranscriptStore: writes off the loop, merged utterance rows, durability, retention.

Every test here runs against SQLite and against PostgreSQL (skipped without the server binaries):
the two backends promise the same API and the same answers.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs

from callbridge.transcripts.store import StoreUnavailable, TranscriptStore, _Barrier

from .helpers import make_record

MakeStore = Callable[..., TranscriptStore]


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


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Builds stores (not started) on one database of this test: a reopen sees the same data."""
    if request.param == "sqlite":
        return lambda **kw: TranscriptStore.at(tmp_path, **kw)
    url = request.getfixturevalue("pg_url")
    return lambda **kw: TranscriptStore.postgres(url, **kw)


@pytest.fixture
async def store(make_store: MakeStore) -> AsyncIterator[TranscriptStore]:
    store = make_store()
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

    async def test_full_queue_drops_instead_of_blocking(self, make_store: MakeStore) -> None:
        """With the writer stuck, writes beyond the queue's size are dropped and counted."""
        release = threading.Event()
        store = make_store(queue=queue.Queue(3))
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
    async def test_clean_close_loses_nothing(self, make_store: MakeStore) -> None:
        store = make_store()
        store.start()
        store.save_call(make_record().snapshot())
        for i in range(3000):
            store.save_utterance(
                utterance_row(f"u{i:04d}", source_text=str(i), first_seen_at=float(i))
            )
        with trio.fail_after(20):
            await store.close()
            reopened = make_store()
            reopened.start()
            try:
                found = await reopened.get_call("call-1")
            finally:
                await reopened.close()
        assert found is not None
        assert len(found["utterances"]) == 3000
        assert reopened.stats.dropped == 0

    async def test_calls_left_open_by_a_dead_process_are_closed_on_start(
        self, make_store: MakeStore
    ) -> None:
        first = make_store()
        first.start()
        first.save_call(make_record("live", status="connected").snapshot())
        first.save_call(
            make_record("done", status="ended", end_reason="hangup", ended_at=9.0).snapshot()
        )
        with trio.fail_after(10):
            await first.close()
            second = make_store()
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


class TestLiveCalls:
    async def test_live_calls_carry_sids_and_owner_for_restart_recovery(
        self, make_store: MakeStore
    ) -> None:
        first = make_store(owner="node-a")
        first.start()
        first.save_call(make_record("live", status="connected", operator_sid="CAop").snapshot())
        first.save_call(make_record("done", status="ended", end_reason="hangup").snapshot())
        with trio.fail_after(10):
            await first.close()
            # Restart recovery opens without closing, ends the calls at Twilio, then marks them.
            second = make_store(owner="node-a")
            second.start(interrupted_reason=None)
            try:
                live = await second.own_live_calls()
            finally:
                await second.close()
        [call] = live
        assert (call["id"], call["caller_sid"], call["operator_sid"]) == ("live", "CAlive", "CAop")
        assert (call["status"], call["owner"]) == ("connected", "node-a")

    async def test_a_shared_store_closes_only_its_own_calls_on_start(
        self, make_store: MakeStore
    ) -> None:
        a, b = make_store(owner="node-a"), make_store(owner="node-b")
        a.start()
        b.start()
        a.save_call(make_record("on-a", status="connected").snapshot())
        b.save_call(make_record("on-b", status="connected").snapshot())
        with trio.fail_after(10):
            await a.close()
            restarted = make_store(owner="node-a")
            restarted.start()
            try:
                left = await restarted.live_calls()
                of_b = await restarted.live_calls("node-b")
            finally:
                await restarted.close()
                await b.close()
        if restarted.backend.shared:
            assert [c["id"] for c in left] == ["on-b"]  # node-b's call is still running
            assert [c["owner"] for c in of_b] == ["node-b"]
        else:  # SQLite holds one instance's calls: all of them were this process's
            assert left == [] and of_b == []


class TestWriterHealth:
    async def test_a_dead_writer_is_noticed_and_reads_fail_clearly(
        self, make_store: MakeStore
    ) -> None:
        store = make_store(timeout_s=2.0)
        store.start()

        def boom() -> None:
            raise MemoryError("simulated")

        store._queue.put(_Barrier(boom))
        with trio.fail_after(10):
            while store.health() is None:
                await trio.sleep(0.01)
            assert "died: MemoryError('simulated')" in str(store.health())
            with pytest.raises(StoreUnavailable, match="writer died"):
                await store.get_call("x")
            store.save_call(make_record().snapshot())  # dropped and counted, never raised
            assert store.stats.dropped == 1
            await store.close()

    async def test_a_wedged_writer_times_reads_and_close_out(self, make_store: MakeStore) -> None:
        release = threading.Event()
        store = make_store(timeout_s=0.5)
        store.start()
        store._queue.put(_Barrier(functools.partial(_wait, release)))  # the writer hangs here
        try:
            with trio.fail_after(10), capture_logs() as logs:
                started = trio.current_time()
                with pytest.raises(StoreUnavailable, match=r"committed nothing for 0\.5 s"):
                    await store.list_calls(5)
                assert trio.current_time() - started < 2
                await store.close()
        finally:
            release.set()
        assert any(e["event"] == "store_close_timed_out" for e in logs)


async def test_both_backends_give_identical_answers_and_exports(
    tmp_path: Path, pg_url: str
) -> None:
    from callbridge.transcripts.events import utterance_wire
    from callbridge.transcripts.export import EXPORT_FORMATS, render_export

    call = make_record(status="ended", answered_at=1000.5, end_reason="caller_hangup").snapshot()
    answers = []
    for store in (TranscriptStore.at(tmp_path), TranscriptStore.postgres(pg_url)):
        store.start()
        try:
            store.save_call(call)
            for i, text in enumerate(["hello", 'quote " and <b>', "привет"]):
                store.save_utterance(
                    utterance_row(
                        f"u{i}",
                        first_seen_at=1001.0 + i,
                        source_text=text,
                        source_language="en",
                        translation=f"t{i}",
                        target_language="es",
                        speech_end_at=1001.25 + i,
                        translated_at=1001.75 + i,
                    )
                )
            with trio.fail_after(10):
                found = await store.get_call("call-1")
                listed = await store.list_calls(10)
        finally:
            await store.close()
        assert found is not None
        found["utterances"] = [utterance_wire(u) for u in found["utterances"]]
        answers.append([found, listed, *(render_export(f, found) for f in EXPORT_FORMATS)])
    for sqlite_answer, postgres_answer in zip(*answers, strict=True):
        assert sqlite_answer == postgres_answer
