"""The end-of-call line, ``call_ended``: what it says about the languages and any failure.

Logged once per call by the session as its last act. A provider's failure (Palabra's) was
logged where it happened and as ``call_failed``, so ``call_ended`` names it at info level; any
other exception is a bug of ours and comes with its traceback at error level.
"""

from __future__ import annotations

import trio

from callbridge.errors import CallEnded, PalabraError, leaves
from callbridge.log import get_logger
from callbridge.records import CallRecord

__all__ = ["languages", "log_call_ended"]

log = get_logger("callbridge.call")


def languages(record: CallRecord) -> dict[str, str]:
    """Both parties' languages and how each was chosen (``routing.LanguageSource``)."""
    return {
        "caller_language": record.caller_language,
        "caller_language_source": record.caller_language_source,
        "operator_language": record.operator_language,
        "operator_language_source": record.operator_language_source,
    }


def log_call_ended(fields: dict[str, object], failure: BaseException | None) -> None:
    """Log ``call_ended`` with ``fields``; ``failure`` is what the call's nursery raised, if
    anything (a group is searched leaf by leaf; ``CallEnded`` and cancellation are no failure)."""
    failures = [e for e in leaves(failure) if not isinstance(e, CallEnded | trio.Cancelled)]
    bugs = [e for e in failures if not isinstance(e, PalabraError)]
    if bugs:
        log.error("call_ended", **fields, error=repr(bugs[0]), exc_info=bugs[0])
    elif failures:
        log.info("call_ended", **fields, failure=repr(failures[0]))
    else:
        log.info("call_ended", **fields)
