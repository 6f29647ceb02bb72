"""What flows to a transcript store's writer thread, and the Protocol each database implements.

``TranscriptStore`` (``store.py``) owns the queue, the writer thread and the trio side; a
``StoreBackend`` (``sqlite_store.py``, ``postgres_store.py``) knows one database: its migrations,
how one batch of writes becomes one transaction, and the three read queries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import attrs

__all__ = [
    "CALL_COLUMNS",
    "UTTERANCE_COLUMNS",
    "Barrier",
    "CallRow",
    "Op",
    "Prune",
    "Stop",
    "StoreBackend",
    "StoreWriteError",
    "UtteranceRow",
    "Write",
    "WriterConnection",
]

CALL_COLUMNS: Final = (
    "id",
    "caller_sid",
    "operator_sid",
    "caller_number",
    "operator_number",
    "caller_language",
    "operator_language",
    "status",
    "received_at",
    "answered_at",
    "ended_at",
    "end_reason",
    "caller_language_source",
    "operator_language_source",
)
UTTERANCE_COLUMNS: Final = (
    "call_id",
    "utterance_id",
    "direction",
    "speaker",
    "first_seen_at",
    "source_language",
    "source_text",
    "target_language",
    "translation",
    "speech_end_at",
    "translated_at",
    "played_at",
)
# Stored with a call beside CALL_COLUMNS: when it changed, and which instance runs it.
CALL_EXTRA_COLUMNS: Final = ("updated_at", "owner")


@attrs.frozen
class CallRow:
    """A call upsert: ``CALL_COLUMNS`` + ``updated_at`` (epoch s) + ``owner`` (instance id)."""

    row: Mapping[str, Any]


@attrs.frozen
class UtteranceRow:
    """An utterance upsert; ``None`` columns keep what is stored."""

    row: Mapping[str, Any]


@attrs.frozen
class Prune:
    """Delete ended calls (and utterances) whose ``ended_at``/``received_at`` < ``cutoff`` (epoch s)."""

    cutoff: float


@attrs.frozen
class Barrier:
    """Committed-up-to-here marker; ``done`` runs on the writer thread after the commit."""

    done: Callable[[], None]


@attrs.frozen
class Stop:
    pass


Write = CallRow | UtteranceRow | Prune
Op = Write | Barrier | Stop


class StoreWriteError(Exception):
    """A batch could not be written; it was rolled back. ``retryable``: the connection failed
    (the database is away), as opposed to a bad row."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class WriterConnection(Protocol):
    """The writer thread's own connection. Used from that one thread only."""

    def apply(self, writes: Sequence[Write]) -> int:
        """Apply ``writes`` in one transaction; return the number of calls pruned.

        Raises ``StoreWriteError`` after rolling back."""

    def close(self) -> None: ...


class StoreBackend(Protocol):
    """One database. Every method blocks: call them from worker threads."""

    # "sqlite" or "postgresql".
    dialect: str
    # True when several instances share the database (so each closes only its own calls).
    shared: bool

    @property
    def where(self) -> str:
        """Where the database is, safe to log (no password)."""

    def prepare(self, *, close_owner: str | None, reason: str | None) -> tuple[list[int], int]:
        """Apply migrations; then, if ``reason`` is given, mark calls not ended ended with it
        (only those of ``close_owner``, or all when it is None). Returns (versions applied,
        calls closed)."""

    def open_writer(self) -> WriterConnection: ...

    def list_calls(self, recent: int) -> list[dict[str, Any]]: ...

    def get_call(self, call_id: str) -> dict[str, Any] | None: ...

    def live_calls(self, owner: str | None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def call_dict(row: Sequence[Any], *, with_owner: bool = False) -> dict[str, Any]:
    """A call row selected as ``CALL_COLUMNS`` (+ ``owner`` last) as the API's dict."""
    call = dict(zip(CALL_COLUMNS, row[: len(CALL_COLUMNS)], strict=True))
    if with_owner:
        call["owner"] = row[len(CALL_COLUMNS)]
    return call


def call_result(
    call: Sequence[Any] | None, utterances: Sequence[Sequence[Any]]
) -> dict[str, Any] | None:
    """``get_call``'s answer from a call row and utterance rows (``UTTERANCE_COLUMNS`` order)."""
    if call is None and not utterances:
        return None
    return {
        "call": call_dict(call) if call is not None else None,
        "utterances": [dict(zip(UTTERANCE_COLUMNS, tuple(r), strict=True)) for r in utterances],
    }
