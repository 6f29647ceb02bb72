"""The fake's rules fire for a client that breaks them, so passing link tests mean something."""

from __future__ import annotations

from typing import Any

import trio

from callbridge.roles import Direction
from tests.palabra.fake_server import FakePalabra
from tests.palabra.helpers import (
    GUARD_S,
    speech,
)


class TestFakeEnforces:
    """The fake's rules fire for a client that breaks them, so passing tests mean something."""

    async def test_fake_times_out_an_idle_stream(self, autojump_clock: Any) -> None:
        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                fake.connector()(fake.streaming_url() + "?token=test-key") as ws,
            ):
                await ws.send_message('{"message_type":"set_task","data":' + _task_json() + "}")
                await trio.sleep(11)
        assert fake.connections[0].errors_sent == ["SERVICE_TIMEOUT"]
        assert fake.connections[0].closed_by_server == 1008

    async def test_fake_warns_a_client_that_runs_ahead(self, autojump_clock: Any) -> None:
        from callbridge.palabra.protocol import encode_input_audio

        fake = FakePalabra()
        with trio.fail_after(GUARD_S):
            async with (
                fake.running(),
                fake.connector()(fake.streaming_url() + "?token=test-key") as ws,
            ):
                await ws.send_message('{"message_type":"set_task","data":' + _task_json() + "}")
                await trio.sleep(1)
                for _ in range(3):
                    await ws.send_message(encode_input_audio(speech(0.32)))
                await trio.sleep(0.1)
        assert fake.connections[0].warnings_sent == ["AUDIO_STREAM_TOO_FAST"] * 2


def _task_json() -> str:
    import orjson

    from callbridge.config import Config
    from callbridge.palabra import build_set_task

    return orjson.dumps(build_set_task(Config(), Direction.CALLER_TO_OPERATOR)).decode()
