"""Child process for the kill -9 test: publishes one final utterance every 20 ms through a real
hub and prints ``PUB <n> <time.time()>`` after each, until it is killed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import trio

from callbridge.config import Config, ServerConfig
from callbridge.records import CallRecord
from callbridge.roles import Direction
from callbridge.transcripts import TranscriptEvent, open_transcript_hub


async def main(state_dir: str) -> None:
    config = Config(server=ServerConfig(state_dir=state_dir))
    async with open_transcript_hub(config) as hub:
        record = CallRecord(
            id="crash",
            caller_sid="CA1",
            caller_number="+1",
            caller_language="en",
            operator_language="es",
        )
        record.status = "connected"
        hub.call_updated(record)
        n = 0
        while True:
            n += 1
            now = time.time()
            hub.publish(
                TranscriptEvent(
                    "crash", "final", Direction.CALLER_TO_OPERATOR, f"u{n:05d}", str(n), "en", now
                )
            )
            print("PUB", n, now, flush=True)
            await trio.sleep(0.02)


if __name__ == "__main__":
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    trio.run(main, sys.argv[1])
