"""``CallRecord``: what callbridge knows about one call, from webhook to end reason.

The record is shared vocabulary: calls write it, the transcript store and pages read it, so it
lives here and neither package imports the other for it. ``EndReason`` is the one list of ways a
call can end (``docs/operations.md`` explains each).
"""

from __future__ import annotations

import enum
import secrets
import time
from typing import Any, Literal

import attrs

from callbridge.roles import Role

__all__ = ["CallRecord", "CallStatus", "EndReason", "new_call_id"]


class EndReason(enum.StrEnum):
    """Why a call ended: its ``end_reason`` in the store, the API and the ``call_ended`` line."""

    COMPLETED = "completed"
    CALLER_HANGUP = "caller_hangup"
    OPERATOR_HANGUP = "operator_hangup"
    NO_OPERATOR = "no_operator"
    TRANSLATION_FAILED = "translation_failed"
    MEDIA_TIMEOUT = "media_timeout"
    LEG_TIMEOUT = "leg_timeout"
    CALLER_STREAM_TIMEOUT = "caller_stream_timeout"
    SHUTDOWN = "shutdown"
    INTERNAL_ERROR = "internal_error"
    # The process that owned the call stopped without ending it (a crash, kill -9).
    INTERRUPTED = "interrupted"
    # A media socket ended without Twilio's ``stop`` (it broke), or carried a message far larger
    # than anything Twilio sends.
    MEDIA_LOST = "media_lost"
    MEDIA_TOO_LARGE = "media_too_large"

    @classmethod
    def hangup(cls, role: Role) -> EndReason:
        """``role`` hung up."""
        return cls.CALLER_HANGUP if role is Role.CALLER else cls.OPERATOR_HANGUP

    @property
    def apologises(self) -> bool:
        """The caller is still on the line and hears the apology rather than a bare hang-up."""
        return self in _APOLOGY_REASONS


_APOLOGY_REASONS = frozenset(
    {
        EndReason.NO_OPERATOR,
        EndReason.TRANSLATION_FAILED,
        EndReason.INTERNAL_ERROR,
        EndReason.MEDIA_TIMEOUT,
        EndReason.LEG_TIMEOUT,
        EndReason.MEDIA_LOST,
        EndReason.MEDIA_TOO_LARGE,
    }
)

# In the order a call moves through them: ringing (admitted, operator not yet bridged),
# connected (bridged), ended.
CallStatus = Literal["ringing", "connected", "ended"]


def new_call_id() -> str:
    """An unguessable id (128 bits), safe in URLs."""
    return secrets.token_urlsafe(16)


@attrs.define
class CallRecord:
    """Mutable, owned by one call's session; everyone else gets ``snapshot()`` copies.

    Times are Unix epoch seconds (wall clock), since they are shown to people and stored.
    """

    id: str
    caller_sid: str
    caller_number: str
    caller_language: str  # "auto" until Palabra detected it
    operator_language: str
    operator_sid: str | None = None
    operator_number: str | None = None
    status: CallStatus = "ringing"
    received_at: float = attrs.field(factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    # How each language was chosen: prefix, menu, detected, default, operator_speaks
    # (callbridge.routing.LanguageSource). Operator "operator_speaks" = bridged untranslated.
    caller_language_source: str = attrs.field(default="default", converter=str)
    operator_language_source: str = attrs.field(default="default", converter=str)

    def set_caller_language(self, language: str, source: str) -> None:
        """The caller's language became known or changed (detected, or ``*digit`` mid-call)."""
        self.caller_language = language
        self.caller_language_source = source

    def set_operator_language(self, language: str, source: str) -> None:
        """The operator's language for this call (a ``BridgePlan``'s)."""
        self.operator_language = language
        self.operator_language_source = source

    def snapshot(self) -> dict[str, Any]:
        return attrs.asdict(self)
