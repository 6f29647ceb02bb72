"""Helpers for the three-instance cluster test: the cluster's view from outside (Redis, PostgreSQL,
every instance's log and API), and a live transcript feed read over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from typing import Any

import attrs
import httpx
import redis

from callbridge.sim.stack import Process, Stack

EVENT_TIMEOUT_S = 60.0  # a loaded 2-core machine runs three daemons, both simulators, Redis, PG


@attrs.define
class Leases:
    """The operator lease set, as another (fake) instance holding numbers would touch it: a test
    makes operators busy elsewhere, so the cluster's next pick is the one it wants."""

    client: redis.Redis
    prefix: str
    mine: set[str] = attrs.Factory(set)

    @property
    def _leases(self) -> str:
        return "{" + self.prefix + "}:operators:leases"

    def hold(self, numbers: list[str]) -> None:
        """Lease every one of ``numbers`` that no instance holds now, for an hour."""
        expiry = (int(time.time()) + 3600) * 1000
        for number in numbers:
            if self.client.zscore(self._leases, number) is None:
                self.client.zadd(self._leases, {number: expiry})
                self.mine.add(number)

    def free(self, numbers: list[str] | None = None) -> None:
        for number in list(self.mine if numbers is None else numbers):
            if number in self.mine:
                self.client.zrem(self._leases, number)
                self.mine.discard(number)

    def instance_info(self, instance_id: str) -> dict[str, Any] | None:
        raw = self.client.get("{" + self.prefix + "}:instance:" + instance_id)
        return json.loads(raw) if raw else None


def every_process(stack: Stack) -> list[Process]:
    """Every daemon process the stack ran, the retired (killed, restarted) ones too."""
    return [*stack.retired, *stack.daemons]


def events(stack: Stack, name: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        r
        for proc in every_process(stack)
        for r in proc.events(name)
        if all(r.get(k) == v for k, v in fields.items())
    ]


def wait_until(what: str, check: Callable[[], object], timeout_s: float = EVENT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        time.sleep(0.1)


def call_id_of(stack: Stack, caller_sid: str) -> tuple[str, int]:
    """The call id the owner gave a caller's CallSid, and the owner's index."""
    found: list[tuple[str, int]] = []

    def started() -> bool:
        for index, proc in enumerate(stack.daemons):
            for record in proc.events("call_started"):
                if record.get("caller_sid") == caller_sid:
                    found.append((str(record["call_id"]), index))
                    return True
        return False

    wait_until(f"call_started for {caller_sid}", started)
    return found[0]


def api(stack: Stack, index: int, path: str) -> httpx.Response:
    return httpx.get(
        stack.app_urls[index] + path,
        headers={"Authorization": f"Bearer {stack.options.web_token}"},
        timeout=15,
    )


def stored_call(stack: Stack, index: int, call_id: str) -> dict[str, Any]:
    response = api(stack, index, f"/api/calls/{call_id}")
    response.raise_for_status()
    call: dict[str, Any] = response.json()["call"]
    return call


def feed_messages(
    stack: Stack, index: int, call_id: str, last_event_id: str | None = None
) -> Generator[tuple[str, dict[str, Any]], None, None]:
    """``(event id, message)`` from instance ``index``'s live feed of ``call_id`` (SSE)."""
    headers = {"Authorization": f"Bearer {stack.options.web_token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    url = f"{stack.app_urls[index]}/api/calls/{call_id}/feed"
    timeout = httpx.Timeout(15, read=EVENT_TIMEOUT_S)
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
        response.raise_for_status()
        event_id = ""
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                message = json.loads(line[6:])
                if message.get("type") != "heartbeat":
                    yield event_id, message
