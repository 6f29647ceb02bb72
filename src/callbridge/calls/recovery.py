"""Restart recovery: end at Twilio the calls no process runs any more, then mark them ``interrupted``.

A call lives in one process; when that process dies (kill -9, a crash, a lost machine) its calls
die with it, but Twilio still holds both legs: the caller may sit in the greeting, the operator's
phone may still ring, a bridged leg may wait on its stream's ``<Connect action>``. The store keeps
what ending them needs (``calls.caller_sid``, ``operator_sid``, ``caller_language``, ``owner``).
So at start-up a daemon reads its own calls the store still holds as live
(``TranscriptStore.own_live_calls``, before it admits any call), and in cluster mode the survivor
that claims a dead instance reads that instance's (``live_calls(owner)``); for each call, at
once and bounded by ``CLEANUP_TIMEOUT_S``:

- the caller hears the apology in their language and is hung up (``<Say>…<Hangup/>``); if the
  apology cannot be played (the call is not in progress) the call is hung up;
- the operator's call is cancelled if it still rings, hung up if answered
  (``CallControl.cancel`` does either);

then every call is marked ended ``interrupted`` (stored, and shown live on every page). A call
Twilio already ended is not an error (``TwilioRest`` treats 20404/21220 as done). A REST step that
fails otherwise is logged (``recovery_step_failed``) and the call is marked ended anyway: nothing
will run it again. https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import trio

from callbridge.calls.ending import CLEANUP_TIMEOUT_S
from callbridge.calls.ports import CallControl
from callbridge.config import Config, pick_prompt
from callbridge.errors import TwilioError
from callbridge.log import get_logger
from callbridge.records import EndReason
from callbridge.telephony.twiml import say_and_hangup_twiml

__all__ = ["OrphanedCalls", "end_orphaned_calls"]

log = get_logger("callbridge.recovery")

# The store's live calls are read once per recovery; more than this many is a store problem.
_MAX_CALLS: Final = 10_000


class OrphanedCalls(Protocol):
    """Where the orphaned calls are marked ended (``transcripts.TranscriptHub``)."""

    def close_calls(self, calls: Sequence[Mapping[str, Any]], reason: str) -> None: ...


async def end_orphaned_calls(
    config: Config,
    control: CallControl,
    hub: OrphanedCalls,
    calls: Sequence[Mapping[str, Any]],
    *,
    owner: str,
) -> None:
    """End ``calls`` (rows from ``TranscriptStore.live_calls``, once owned by ``owner``) at
    Twilio, all at once, within ``CLEANUP_TIMEOUT_S``; then mark them ended ``interrupted``.
    Never raises for a Twilio problem (logged); returns when every call is marked."""
    calls = list(calls)[:_MAX_CALLS]
    if not calls:
        return
    log.warning("recovery_started", owner=owner, calls=len(calls))
    with trio.move_on_after(CLEANUP_TIMEOUT_S) as scope:
        async with trio.open_nursery() as nursery:
            for call in calls:
                nursery.start_soon(_end_call, config, control, call)
    hub.close_calls(calls, str(EndReason.INTERRUPTED))
    log.warning(
        "recovery_done",
        owner=owner,
        calls=len(calls),
        call_ids=[str(call["id"]) for call in calls],
        timed_out=scope.cancelled_caught,
    )


async def _end_call(config: Config, control: CallControl, call: Mapping[str, Any]) -> None:
    call_id = str(call["id"])
    caller_sid, operator_sid = call.get("caller_sid"), call.get("operator_sid")
    async with trio.open_nursery() as nursery:
        if caller_sid:
            nursery.start_soon(_end_caller, config, control, call_id, str(caller_sid), call)
        if operator_sid:
            end = control.cancel  # hangs up an answered call too
            nursery.start_soon(_step, call_id, "end_operator", end, str(operator_sid))
    log.info("call_recovered", call_id=call_id, caller_sid=caller_sid, operator_sid=operator_sid)


async def _end_caller(
    config: Config, control: CallControl, call_id: str, sid: str, call: Mapping[str, Any]
) -> None:
    language = str(call.get("caller_language") or config.languages.caller)
    twiml = say_and_hangup_twiml(pick_prompt(config.prompts.apology, language), language)
    if not await _step(call_id, "apologise_to_caller", control.update_twiml, sid, twiml):
        await _step(call_id, "hangup_caller", control.hangup, sid)


async def _step(
    call_id: str, step: str, action: Callable[..., Awaitable[None]], sid: str, *args: str
) -> bool:
    try:
        await action(sid, *args)
    except TwilioError as exc:
        log.warning(
            "recovery_step_failed",
            call_id=call_id,
            step=step,
            sid=sid,
            error=str(exc),
            status=exc.status,
            code=exc.code,
        )
        return False
    return True
