"""``CallEnding``: ends one call at Twilio, once, as soon as its end reason is known.

The REST steps are the caller's (the apology for the reasons that apologise, else a hang-up; nothing
when the caller hung up) and the operator legs' (``OperatorDialer.end``: cancel a ringing call,
hang up an answered one; nothing when the operator hung up). They run in the background nursery
(the supervisor's), beside the call's own teardown, not after it: the Palabra links' goodbyes take
seconds when Palabra is slow, and neither party should wait on them (nor should a daemon that was
told to stop). Both steps run at once and are bounded together: ``CLEANUP_TIMEOUT_S`` after the
end began, or an earlier ``deadline`` (a shutdown's).

Error handling: a failed REST step is logged and does not stop the other (``quietly``); anything
else is a bug, logged by the background guard, never raised into the supervisor's nursery.
"""

from __future__ import annotations

import math
from typing import Final

import trio

from callbridge.calls.dialer import OperatorDialer, quietly
from callbridge.calls.operator_legs import start_guarded
from callbridge.calls.ports import CallControl
from callbridge.config import Config, pick_prompt
from callbridge.log import get_logger
from callbridge.records import CallRecord, EndReason
from callbridge.telephony.twiml import say_and_hangup_twiml

__all__ = ["CLEANUP_TIMEOUT_S", "CallEnding"]

log = get_logger("callbridge.call")

# How long the REST steps of a call's end may take before we give up on them.
CLEANUP_TIMEOUT_S: Final = 10.0


class CallEnding:
    """The end of one call at Twilio; see the module docstring."""

    def __init__(
        self,
        config: Config,
        control: CallControl,
        record: CallRecord,
        dialer: OperatorDialer,
        background: trio.Nursery,
    ) -> None:
        self._config = config
        self._control = control
        self._record = record
        self._dialer = dialer
        self._background = background
        self._scope = trio.CancelScope()
        self.reason: EndReason | None = None
        self.done = trio.Event()

    @property
    def deadline(self) -> float:
        """When the REST steps are given up (trio time); ``inf`` before ``begin``."""
        return self._scope.deadline

    def begin(self, reason: EndReason, deadline: float = math.inf, detail: str = "") -> None:
        """Start ending the call at Twilio for ``reason`` (the first reason wins; a later call
        may only bring the deadline closer). Never blocks. A failure the caller hears the
        apology for is logged here, once, with its ``detail`` (what went wrong, and where);
        failures without one were logged where they happened (Palabra's, a bug's traceback)."""
        if self.reason is None:
            if reason.apologises and detail:
                log.warning("call_failed", reason=str(reason), detail=detail)
            self.reason = reason
            self._scope.deadline = trio.current_time() + CLEANUP_TIMEOUT_S
            self._dialer.end(reason)
            start_guarded(self._background, self._run, reason, name="end-at-twilio")
        self._scope.deadline = min(self._scope.deadline, deadline)

    async def _run(self, reason: EndReason) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._end_caller, reason)
                    nursery.start_soon(self._dialer.legs.wait_ended)
        finally:
            self.done.set()

    async def _end_caller(self, reason: EndReason) -> None:
        control, config, sid = self._control, self._config, self._record.caller_sid
        if reason is EndReason.CALLER_HANGUP:
            return
        if reason.apologises:
            language = self._record.caller_language
            text = pick_prompt(config.prompts.apology, language)
            twiml = say_and_hangup_twiml(text, language)
            await quietly(control.update_twiml(sid, twiml), "apologise_to_caller")
        else:
            await quietly(control.hangup(sid), "hangup_caller")
