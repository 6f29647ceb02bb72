"""``CallRecord``: what callbridge knows about one call, from webhook to end reason."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

import attrs

__all__ = ["CallRecord", "CallStatus", "new_call_id"]

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
    end_reason: str | None = None
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
