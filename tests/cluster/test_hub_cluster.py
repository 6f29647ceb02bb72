"""Two instances' hubs on one PostgreSQL and one Redis: every page sees every call, live."""

from __future__ import annotations

from pathlib import Path

import orjson
import trio

from callbridge.cluster import open_cluster
from callbridge.config import Config
from callbridge.transcripts import open_transcript_hub
from callbridge.transcripts.hub import Feed

from ..transcripts.helpers import make_record, utterance_events
from .helpers import cluster_config


async def next_message(feed: Feed) -> dict[str, object]:
    item = await feed.receive.receive()
    message: dict[str, object] = orjson.loads(item.payload)
    message["_id"] = feed.event_id(item)
    return message


async def test_a_call_owned_by_one_instance_is_live_and_resumable_on_another(
    redis_server: str, redis_prefix: str, pg_url: str, tmp_path: Path
) -> None:
    def config(name: str) -> Config:
        return cluster_config(
            redis_server, redis_prefix, name, database_url=pg_url, state_dir=str(tmp_path / name)
        )

    c1, c3 = config("node-1"), config("node-3")
    with trio.fail_after(30):
        async with (
            open_cluster(c1) as cluster1,
            open_cluster(c3) as cluster3,
            open_transcript_hub(c1, feeds=cluster1.feeds) as hub1,
            open_transcript_hub(c3, feeds=cluster3.feeds) as hub3,
        ):
            async with hub1.open_feed(None, None) as calls_page:
                [listing] = [orjson.loads(i.payload) for i in calls_page.initial]
                assert listing["calls"] == []
                hub3.call_updated(make_record("c3", status="connected"))
                status = await next_message(calls_page)
            assert (status["kind"], status["call_id"]) == ("call", "c3")

            await hub3.store.flush()  # the owner's writer commits within milliseconds
            async with hub1.open_feed("c3", None) as page:
                [snapshot] = [orjson.loads(i.payload) for i in page.initial[:1]]
                assert snapshot["call"]["id"] == "c3"
                events = utterance_events("u1", "hello there", "hola", call_id="c3")
                hub3.publish(events[0])
                first = await next_message(page)
            assert first["kind"] == "partial"
            for event in events[1:]:
                hub3.publish(event)
            # The page reconnects, through the proxy, to instance 3 with its last id.
            async with hub3.open_feed("c3", str(first["_id"])) as again:
                kinds = [orjson.loads(i.payload)["kind"] for i in again.initial]
                while len(kinds) < 3:
                    kinds.append((await next_message(again))["kind"])
            assert kinds == ["final", "translation", "played"]

            # History and exports come from the shared store, whichever instance answers (once
            # the owner's writer has committed: milliseconds).
            await hub3.store.flush()
            found = await hub1.get_call("c3")
            listed = await hub1.list_calls()
    assert found is not None and found["utterances"][0]["translation"] == "hola"
    assert [c["id"] for c in listed] == ["c3"]
