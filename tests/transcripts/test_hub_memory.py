"""The hub's memory per call stays flat however long the call lasts (issue 12 §4)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import trio

from callbridge.transcripts import open_transcript_hub
from callbridge.transcripts.hub import UTTERANCES_KEPT, encode

from .helpers import make_config, make_record, utterance_events
from .test_hub import messages


def test_an_encoded_feed_item_is_no_bigger_than_its_text() -> None:
    """orjson returns a bytes object over a buffer of at least 4 KiB; the replay rings keep
    thousands of items, so each must hold its own length and no more."""
    message = {"type": "event", "kind": "partial", "text": "hello there", "data": {}}
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        items = [encode(message) for _ in range(100)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        if started:
            tracemalloc.stop()
    size = len(items[0])
    assert size < 100
    # The bytes header is 33 bytes; the list of 100 pointers adds under 1 KiB.
    assert held < 100 * (size + 64) + 1024, f"{held / 100:.0f} bytes per {size}-byte item"


async def test_a_long_call_keeps_a_bounded_number_of_utterances_and_a_full_snapshot(
    tmp_path: Path,
) -> None:
    utterances = UTTERANCES_KEPT + 40
    with trio.fail_after(30):
        async with open_transcript_hub(make_config(tmp_path)) as hub:
            hub.call_updated(make_record())
            for n in range(utterances):
                for event in utterance_events(f"u{n}", f"source {n}", f"target {n}", t0=n * 10.0):
                    hub.publish(event)
                assert hub.utterances_held("call-1") <= UTTERANCES_KEPT
            # A late piece of an evicted utterance is still stored, and still bounded.
            [_, _, late, _] = utterance_events("u0", "", "target 0 again", t0=0.0)
            hub.publish(late)
            assert hub.utterances_held("call-1") <= UTTERANCES_KEPT
            async with hub.open_feed("call-1", None) as feed:
                [snapshot] = messages(feed)
    # A page joining now still sees the whole call, in order: from the store.
    rows = snapshot["utterances"]
    assert [row["utterance_id"] for row in rows] == [f"u{n}" for n in range(utterances)]
    assert rows[0]["source_text"] == "source 0"
    assert rows[0]["translation"] == "target 0 again"
    assert rows[-1]["played_at"] is not None
