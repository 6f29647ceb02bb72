"""Pure TwiML builders, and the URLs callbridge hands to Twilio.

Every builder returns the document as ``str`` (with the XML declaration), built by twilio-python's
``VoiceResponse`` so escaping and attribute spelling are Twilio's own. URLs are always derived from
the configured public URL, never from a request: Twilio signs and dials exactly what we give it.

Limits enforced here rather than discovered on a live call (twilio-protocol.md §1.1, §2.1):
- a ``<Stream url>`` must be ``wss://`` (``ws://`` only for local simulators) with no query string,
  because Twilio drops query strings;
- each ``<Parameter>``'s name plus value must stay under 500 characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlsplit

from twilio.twiml.voice_response import VoiceResponse

from callbridge.telephony.languages import say_language

__all__ = [
    "MAX_PARAMETER_CHARS",
    "connect_stream_twiml",
    "hangup_twiml",
    "http_url",
    "media_stream_url",
    "operator_twiml_url",
    "say_and_hangup_twiml",
    "say_language",
    "status_callback_url",
    "stream_ended_url",
    "to_websocket_url",
]

# Twilio: "the combined length of each <Parameter> name and value attributes must be under 500".
MAX_PARAMETER_CHARS: Final = 500


def connect_stream_twiml(
    *,
    say_text: str | None,
    say_lang: str,
    stream_url: str,
    action_url: str,
    parameters: Mapping[str, str],
) -> str:
    """``[<Say>] <Connect action><Stream url><Parameter/>...</Stream></Connect>``.

    ``<Connect>`` blocks until the stream's socket closes, then Twilio POSTs ``action_url`` and runs
    the TwiML it returns; nothing after ``<Connect>`` would be reached, so nothing is added.

    Error handling: ``ValueError`` for a stream URL with a query string or a non-WebSocket scheme,
    and for a parameter over Twilio's 500-character limit.
    """
    _check_stream_url(stream_url)
    response = VoiceResponse()
    if say_text:
        response.say(say_text, language=say_language(say_lang))
    connect = response.connect(action=action_url, method="POST")
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        if len(name) + len(value) >= MAX_PARAMETER_CHARS:
            msg = f"<Parameter> {name!r}: name + value must be under {MAX_PARAMETER_CHARS} chars"
            raise ValueError(msg)
        stream.parameter(name=name, value=value)
    return str(response)


def say_and_hangup_twiml(text: str, lang: str) -> str:
    """``<Say language>text</Say><Hangup/>``: a last message, then the call ends."""
    response = VoiceResponse()
    response.say(text, language=say_language(lang))
    response.hangup()
    return str(response)


def hangup_twiml() -> str:
    """``<Hangup/>``: end the call at once."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


def to_websocket_url(public_url: str) -> str:
    """``https://`` -> ``wss://``, ``http://`` -> ``ws://`` (path kept, trailing slash dropped)."""
    url = public_url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url.removeprefix("https://")
    if url.startswith("http://"):
        return "ws://" + url.removeprefix("http://")
    msg = f"public URL must be http(s)://, got {public_url!r}"
    raise ValueError(msg)


def http_url(public_url: str, path: str) -> str:
    """``public_url`` joined with an absolute ``path`` (a path prefix in ``public_url`` is kept)."""
    return public_url.rstrip("/") + path


def media_stream_url(public_url: str, call_id: str, role: str) -> str:
    """The ``<Stream url>`` of one leg: ``{public_url as ws(s)}/media/{call_id}/{role}``."""
    return to_websocket_url(public_url) + f"/media/{_segment(call_id)}/{_segment(role)}"


def operator_twiml_url(public_url: str, call_id: str) -> str:
    """The ``Url`` of the operator's outbound call: ``/twiml/operator/{call_id}``."""
    return http_url(public_url, f"/twiml/operator/{_segment(call_id)}")


def status_callback_url(public_url: str, call_id: str, role: str) -> str:
    """A leg's ``StatusCallback``: ``/twilio/status/{call_id}/{role}``."""
    return http_url(public_url, f"/twilio/status/{_segment(call_id)}/{_segment(role)}")


def stream_ended_url(public_url: str, call_id: str, role: str) -> str:
    """A leg's ``<Connect action>``: ``/twiml/stream-ended/{call_id}/{role}``."""
    return http_url(public_url, f"/twiml/stream-ended/{_segment(call_id)}/{_segment(role)}")


def _segment(value: str) -> str:
    # Ids are ours and URL-safe already; quoting keeps a stray "/" or "?" from changing the route.
    return quote(value, safe="")


def _check_stream_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws") or not parts.netloc:
        msg = f"<Stream url> must be a wss:// URL, got {url!r}"
        raise ValueError(msg)
    if parts.query:
        msg = f"<Stream url> must not have a query string (Twilio drops it), got {url!r}"
        raise ValueError(msg)
