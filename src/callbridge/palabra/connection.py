"""One open Palabra WebSocket as the link's tasks share it, and how one is opened.

A link has at most one ``Connection`` at a time. Its reader, paced sender and pinger run in that
connection's nursery and meet through its three events; the supervisor replaces the whole
connection on a reconnect.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeAlias

import attrs
import trio
from trio_websocket import WebSocketConnection

__all__ = ["Connection", "Connector"]

# Opens one WebSocket to a URL (the URL carries the token). Tests inject an in-memory one.
Connector: TypeAlias = Callable[[str], AbstractAsyncContextManager[WebSocketConnection]]


@attrs.define(eq=False)
class Connection:
    """``ready``: the task runs (acknowledged, or ``current_task`` said ``running``).
    ``ended``: ``end_of_stream`` arrived, or the socket closed while the link was closing.
    ``sender_done``: the paced sender has sent the buffered tail (or gave up).
    ``unanswered_speech_s``: seconds of speech sent since the server last sent a transcript or
    translated speech (the output watchdog's measure of a stalled connection)."""

    ws: WebSocketConnection
    ready: trio.Event = attrs.Factory(trio.Event)
    ended: trio.Event = attrs.Factory(trio.Event)
    sender_done: trio.Event = attrs.Factory(trio.Event)
    unanswered_speech_s: float = 0.0
    answered: bool = False  # any transcript or translated speech on this connection
