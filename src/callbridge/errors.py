"""The callbridge error vocabulary.

- ``CallbridgeError``: base of everything raised on purpose.
  - ``ConfigError``: the configuration is invalid; ``problems`` lists every finding.
  - ``TwilioError``: a Twilio REST request failed for good (``status``, ``code`` from Twilio).
  - ``SignatureError``: a webhook or media upgrade failed the ``X-Twilio-Signature`` check.
  - ``PalabraError``: the translator could not be used.
    - ``PalabraAuthError``: credentials refused (401/403/404); never retried.
    - ``PalabraTaskRejected``: ``set_task`` answered with ``error`` (``code``, ``desc``).
    - ``PalabraUnavailable``: connect/readiness failed or the reconnect budget ran out.
  - ``CallEnded``: raised inside a call's nursery to end the call on purpose, with a reason.

trio wraps what leaves a nursery in ``BaseExceptionGroup``; ``leaves`` and ``reraise_non_exceptions``
are the one place that walks such a group (``except*`` where a handler fits better).
"""

from __future__ import annotations

from collections.abc import Iterator

from callbridge.records import EndReason

__all__ = [
    "CallEnded",
    "CallbridgeError",
    "ConfigError",
    "PalabraAuthError",
    "PalabraError",
    "PalabraTaskRejected",
    "PalabraUnavailable",
    "SignatureError",
    "TwilioError",
    "leaves",
    "non_exceptions",
]


class CallbridgeError(Exception):
    """Base class of callbridge's own errors."""


class ConfigError(CallbridgeError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration: " + "; ".join(self.problems))


class TwilioError(CallbridgeError):
    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class SignatureError(CallbridgeError):
    pass


class PalabraError(CallbridgeError):
    pass


class PalabraAuthError(PalabraError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class PalabraTaskRejected(PalabraError):
    def __init__(self, code: str, desc: str) -> None:
        self.code = code
        self.desc = desc
        super().__init__(f"Palabra rejected the task: {code}: {desc}")


class PalabraUnavailable(PalabraError):
    pass


class CallEnded(CallbridgeError):
    """Ends a call's nursery on purpose; ``reason`` is the call's end reason."""

    def __init__(self, reason: EndReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def leaves(exc: BaseException | None) -> Iterator[BaseException]:
    """Every exception in ``exc``, depth first, with groups opened (nothing for ``None``)."""
    if exc is None:
        return
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def non_exceptions(exc: BaseException) -> BaseException | None:
    """The part of ``exc`` that is not an ``Exception`` (``trio.Cancelled``, ``KeyboardInterrupt``,
    ``SystemExit``), which must always be re-raised; ``None`` when there is none."""
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(Exception)
        return rest
    return None if isinstance(exc, Exception) else exc
