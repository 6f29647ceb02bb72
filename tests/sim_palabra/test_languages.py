"""Languages in the Palabra simulator: it reports every task it ran (and each set_task update),
and with an ``auto`` source it "detects" the scripted language among the allowed ones."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import trio

from tests.sim_palabra.conftest import StartSim
from tests.sim_palabra.helpers import Client, open_client, silence, task, tone


def auto_task(detectable: list[str], target: str = "es") -> dict[str, Any]:
    data = task("auto", target)
    data["pipeline"]["transcription"]["detectable_languages"] = detectable
    return data


async def one_utterance(client: Client) -> dict[str, Any]:
    await client.stream(tone(500, 0.6) + silence(0.5))
    return await client.until("validated_transcription")


async def test_auto_source_is_detected_as_the_scripted_language(start_sim: StartSim) -> None:
    sim = await start_sim(detect_language="ru")
    with trio.fail_after(10):
        async with open_client(sim) as client:
            await client.ready(auto_task(["en", "ru"]))
            validated = await one_utterance(client)
            translated = await client.until("translated_transcription")
    partials = client.of_type("partial_transcription")
    assert validated["data"]["transcription"]["language"] == "ru"
    assert {p["data"]["transcription"]["language"] for p in partials} == {"ru"}
    assert validated["data"]["transcription"]["text"].startswith("[sim ru #1]")
    assert translated["data"]["transcription"]["language"] == "es"
    report = sim.state.connections[0]
    assert report.detected_language == "ru"
    assert report.source_language == "auto"
    assert report.utterances[0].source_language == "ru"


async def test_a_language_outside_the_allowed_ones_is_not_detected(start_sim: StartSim) -> None:
    sim = await start_sim(detect_language="ru")
    with trio.fail_after(10):
        async with open_client(sim) as client:
            await client.ready(auto_task(["de", "en"]))
            validated = await one_utterance(client)
    assert validated["data"]["transcription"]["language"] == "de"
    assert sim.state.connections[0].detected_language == "de"


async def test_fixed_source_is_never_detected(start_sim: StartSim) -> None:
    sim = await start_sim(detect_language="ru")
    with trio.fail_after(10):
        async with open_client(sim) as client:
            await client.ready(task("en", "es"))
            validated = await one_utterance(client)
    assert validated["data"]["transcription"]["language"] == "en"
    assert sim.state.connections[0].detected_language is None


async def test_every_task_and_update_is_reported(start_sim: StartSim) -> None:
    """The caller switches to Russian mid-call: the report shows the task it started with and
    the update, and recognition follows the new language."""
    sim = await start_sim()
    with trio.fail_after(10):
        async with open_client(sim) as client:
            await client.ready(task("en", "es"))
            first = await one_utterance(client)
            switched = copy.deepcopy(task("ru", "es"))
            await client.send("set_task", switched)
            updated = await client.until("task_status")
            await client.send("set_task", switched)
            await client.until("task_status")
            second = await one_utterance(client)
        async with httpx.AsyncClient() as http:
            report = (await http.get(f"{sim.url}/_sim/report")).json()
    assert updated["data"]["event"] == "updated"
    assert first["data"]["transcription"]["language"] == "en"
    assert second["data"]["transcription"]["language"] == "ru"
    (conn,) = report["connections"]
    assert [(t["event"], t["source_language"], t["target_languages"]) for t in conn["tasks"]] == [
        ("started", "en", ["es"]),
        ("updated", "ru", ["es"]),
        ("unchanged", "ru", ["es"]),
    ]
    assert conn["tasks"][1]["task"] == switched
    assert conn["source_language"] == "ru"
