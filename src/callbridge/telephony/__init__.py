"""Twilio call-control building blocks: signatures, TwiML, REST, status callbacks.

- ``signature``: ``SignatureChecker`` verifies ``X-Twilio-Signature`` on webhooks and on the Media
  Streams WebSocket upgrade, always against the configured public URL.
- ``twiml``: pure TwiML builders and the URLs handed to Twilio.
- ``languages``: our language codes to Twilio ``<Say language>`` codes.
- ``rest``: ``TwilioRest``, the Calls API on trio through a shared ``httpx.AsyncClient``.
- ``status``: parsing of call status callbacks.
"""

from __future__ import annotations

__all__: list[str] = []
