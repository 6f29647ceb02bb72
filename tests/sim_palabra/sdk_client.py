"""Runs the official ``palabra-ai`` SDK against the simulator (in a subprocess: the SDK is asyncio).

Usage: ``python sdk_client.py WS_BASE API_KEY`` prints one JSON summary line on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
import palabra_ai.client as sdk_client
from palabra_ai import Palabra
from palabra_ai.events import Audio, StreamEnd, TaskStatus, Transcript


def _pcm() -> bytes:
    rate = 24000
    t = np.arange(rate) / rate
    speech = (np.sin(2 * np.pi * 500 * t) * 0.3 * 32767).astype("<i2").tobytes()
    return speech + bytes(2 * rate)  # 1 s tone + 1 s silence


async def _main(ws_base: str, api_key: str) -> dict[str, object]:
    sdk_client.REGIONS["eu"] = sdk_client.Region(
        translation=f"{ws_base}/streaming-api/{{random_hash}}/v1/speech-to-speech/stream"
    )
    transcripts: list[list[str]] = []
    task_status: list[str] = []
    audio_bytes, last_chunk, stream_end = 0, False, False
    async with Palabra(api_key=api_key).translation("en", "es", silence_threshold=0.3) as session:
        feeder = asyncio.create_task(session.send_pcm(_pcm(), end=True))
        async for event in session:
            if isinstance(event, Transcript):
                transcripts.append([event.type, event.language, event.text])
            elif isinstance(event, Audio):
                audio_bytes += len(event.pcm)
                last_chunk = last_chunk or event.last_chunk
            elif isinstance(event, TaskStatus):
                task_status.append(event.event)
            elif isinstance(event, StreamEnd):
                stream_end = True
        await feeder
    summary: dict[str, object] = {
        "transcripts": transcripts,
        "audio_bytes": audio_bytes,
        "last_chunk": last_chunk,
    }
    if task_status:
        summary["task_status"] = task_status
    if stream_end:
        summary["stream_end"] = True
    return summary


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(sys.argv[1], sys.argv[2]))))
