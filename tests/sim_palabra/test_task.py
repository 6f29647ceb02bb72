"""set_task validation, readiness (acknowledged and legacy polling), pause/resume/update."""

from __future__ import annotations

import copy

import pytest
import trio

from callbridge.sim.palabra.task import TaskConfig, parse_task, validation_desc
from tests.sim_palabra.conftest import StartSim
from tests.sim_palabra.helpers import open_client, silence, task, tone


def _errors(data: object) -> list[tuple[object, ...]]:
    parsed = parse_task(data)
    assert isinstance(parsed, list), "expected validation errors"
    return [e.loc for e in parsed]


class TestParseTask:
    def test_valid_task(self) -> None:
        parsed = parse_task(task("en", "es", silence=0.5, partials=True))
        assert isinstance(parsed, TaskConfig)
        assert parsed.source_language == "en"
        assert parsed.target_languages == ["es"]
        assert parsed.targets[0].translate_partials is True
        assert parsed.silence_threshold_s == 0.5
        assert (parsed.sample_rate, parsed.channels, parsed.output_audio) == (24000, 1, True)

    def test_null_output_means_text_only(self) -> None:
        parsed = parse_task(task(output=False))
        assert isinstance(parsed, TaskConfig)
        assert parsed.output_audio is False

    def test_silence_threshold_minimum(self) -> None:
        assert _errors(task(silence=0.2)) == [
            ("pipeline", "transcription", "segment_confirmation_silence_threshold")
        ]

    def test_input_source_limits(self) -> None:
        data = task()
        data["input_stream"]["source"].update(format="mp3", sample_rate=8000, channels=3)
        assert _errors(data) == [
            ("input_stream", "source", "format"),
            ("input_stream", "source", "sample_rate"),
            ("input_stream", "source", "channels"),
        ]

    def test_queue_levels(self) -> None:
        data = task()
        data["pipeline"]["translation_queue_configs"] = {
            "global": {"desired_queue_level_ms": 8000, "max_queue_level_ms": 8000}
        }
        assert _errors(data) == [("pipeline", "translation_queue_configs", "global", "__root__")]

    def test_missing_parts_and_unknown_message_types(self) -> None:
        assert _errors({}) == [
            ("input_stream",),
            ("pipeline",),
            ("pipeline", "transcription"),
            ("pipeline", "translations"),
        ]
        data = task(allowed=["translated_transcription", "bogus"])
        assert _errors(data) == [("pipeline", "allowed_message_types", 1)]

    def test_desc_is_a_pydantic_repr(self) -> None:
        parsed = parse_task(task(silence=0.2))
        assert isinstance(parsed, list)
        assert validation_desc(parsed) == (
            "ValidationError(model='SetTaskRequestMessage', errors=[{'loc': ('pipeline', "
            "'transcription', 'segment_confirmation_silence_threshold'), 'msg': 'ensure this value "
            "is greater than or equal to 0.3', 'type': 'value_error.number.not_ge', 'ctx': "
            "{'limit_value': 0.3}}])"
        )


async def test_invalid_task_gets_validation_error(start_sim: StartSim) -> None:
    sim = await start_sim()
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.send("set_task", task(silence=0.1))
            error = await client.until("error")
            await client.send("get_task", {})
            not_found = await client.until("error")
    assert error["data"]["code"] == "VALIDATION_ERROR"
    assert error["data"]["param"] is None
    assert "greater than or equal to 0.3" in error["data"]["desc"]
    assert not_found["data"] == {"code": "NOT_FOUND", "desc": "No active task found", "param": None}
    assert sim.state.connections[0].task_rejected == 1


async def test_readiness_is_acknowledged_after_the_delay(start_sim: StartSim) -> None:
    """NOT_FOUND while warming up, then task_status started/running, then current_task."""
    sim = await start_sim(ready_delay_s=0.3)
    with trio.fail_after(5):
        async with open_client(sim) as client:
            sent_at = trio.current_time()
            await client.send("set_task", task())
            await client.send("get_task", {})
            early = await client.until("error")
            status = await client.until("task_status")
            waited = trio.current_time() - sent_at
            await client.send("get_task", {})
            current = await client.until("current_task")
    assert early["data"]["code"] == "NOT_FOUND"
    assert status["data"] == {"command": "set_task", "event": "started", "task_status": "running"}
    assert 0.25 <= waited < 1.5
    assert current["data"]["task_status"] == "running"
    assert current["data"]["pipeline"]["transcription"]["source_language"] == "en"
    assert sim.state.connections[0].ready_at is not None


async def test_legacy_readiness_is_found_by_polling(start_sim: StartSim) -> None:
    sim = await start_sim(legacy_readiness=True, ready_delay_s=0.3)
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.send("set_task", task())
            answers = []
            while True:
                await client.send("get_task", {})
                while True:
                    reply = await client.receive()
                    if reply.get("message_type") in ("error", "current_task"):
                        break
                answers.append(reply["message_type"])
                if reply["message_type"] == "current_task":
                    break
                await trio.sleep(0.1)
            await client.send("pause_task", {})
            await client.send("get_task", {})
            paused = await client.until("current_task")
    assert answers[0] == "error"
    assert answers[-1] == "current_task"
    assert paused["data"]["task_status"] == "paused"
    assert client.of_type("task_status") == []  # never acknowledged in legacy mode


async def test_pause_resume_update_unchanged(start_sim: StartSim) -> None:
    sim = await start_sim()
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task())
            await client.send("set_task", task())
            unchanged = await client.until("task_status")
            await client.send("pause_task", {})
            paused = await client.until("task_status")
            await client.send_audio(tone(500, 0.2))  # ignored while paused
            await client.send("set_task", task())
            resumed = await client.until("task_status")
            changed = copy.deepcopy(task())
            changed["pipeline"]["transcription"]["segment_confirmation_silence_threshold"] = 0.5
            await client.send("set_task", changed)
            updated = await client.until("task_status")
    assert unchanged["data"] == {
        "command": "set_task",
        "event": "unchanged",
        "task_status": "running",
    }
    assert paused["data"] == {"command": "pause_task", "event": "paused", "task_status": "paused"}
    assert resumed["data"] == {"command": "set_task", "event": "resumed", "task_status": "running"}
    assert updated["data"]["event"] == "updated"
    report = sim.state.connections[0]
    assert report.ignored_audio_chunks == 1
    assert report.task_status_sent == [
        "set_task:started",
        "set_task:unchanged",
        "pause_task:paused",
        "set_task:resumed",
        "set_task:updated",
    ]


async def test_reject_task_fault(start_sim: StartSim) -> None:
    sim = await start_sim()
    sim.state.faults.update({"reject_task": 1})
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.send("set_task", task())
            error = await client.until("error")
            status = await client.ready(task())  # the fault fired once
    assert error["data"]["code"] == "VALIDATION_ERROR"
    assert "simulated" in error["data"]["desc"]
    assert status["data"]["event"] == "started"


@pytest.mark.parametrize("force", [False, True])
async def test_end_task(start_sim: StartSim, force: bool) -> None:
    """Graceful: the pending utterance is translated, then end_of_stream, then close 1000.
    Forced: close at once, no tail and no end_of_stream."""

    sim = await start_sim(translation_delay_s=0.1)
    with trio.fail_after(5):
        async with open_client(sim) as client:
            await client.ready(task())
            await client.stream(tone(500, 0.4) + silence(0.1))  # speech still open at end_task
            await client.send("end_task", {"force": True} if force else {})
            closed = await client.read_until_closed()
    assert closed.reason is not None
    assert closed.reason.code == 1000
    types = [m.get("message_type") for m in client.seen]
    report = sim.state.connections[0]
    if force:
        assert "end_of_stream" not in types
        assert "translated_transcription" not in types
        assert report.eos_sent_at is None
    else:
        assert types[-1] == "end_of_stream"
        assert types.index("validated_transcription") < types.index("translated_transcription")
        assert "output_audio_data" in types
        assert report.eos_sent_at is not None
    assert report.end_task_force is force
    assert report.close_code == 1000
    assert report.closed_by == "server"
