"""Pure TwiML builders, and the URLs callbridge hands to Twilio.

Every builder returns the document as ``str`` (with the XML declaration), built by twilio-python's
``VoiceResponse`` so escaping and attribute spelling are Twilio's own. URLs are always derived from
the configured public URL, never from a request: Twilio signs and dials exactly what we give it.

Limits enforced here rather than discovered on a live call
(https://www.twilio.com/docs/voice/twiml/stream, "Attributes"):
- a ``<Stream url>`` must be ``wss://`` (``ws://`` only for local simulators) with no query string,
  because Twilio drops query strings;
- each ``<Parameter>``'s name plus value must stay under 500 characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import quote, urlsplit

import attrs
from twilio.twiml.voice_response import VoiceResponse

from callbridge.telephony.languages import say_language

__all__ = [
    "MAX_PARAMETER_CHARS",
    "MENU_ROUNDS",
    "MenuPrompt",
    "connect_stream_twiml",
    "hangup_twiml",
    "http_url",
    "language_menu_twiml",
    "language_menu_url",
    "media_stream_url",
    "operator_twiml_url",
    "parse_gather_digits",
    "redirect_twiml",
    "say_and_hangup_twiml",
    "say_language",
    "status_callback_url",
    "stream_ended_url",
    "to_websocket_url",
]

# Twilio: "the combined length of each <Parameter> name and value attributes must be under 500".
MAX_PARAMETER_CHARS: Final = 500
# The keypad menu is played this many times before the caller gets the default language.
MENU_ROUNDS: Final = 2


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


def redirect_twiml(url: str) -> str:
    """``<Redirect method="POST">url</Redirect>``: Twilio requests ``url`` (signed over it) and
    runs what it answers (https://www.twilio.com/docs/voice/twiml/redirect)."""
    response = VoiceResponse()
    response.redirect(url, method="POST")
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


# --- the keypad language menu ----------------------------------------------------------------


@attrs.frozen
class MenuPrompt:
    """One announced menu option: ``text`` said in ``language`` (our code, e.g. ``es``; mapped to
    Twilio's locale) with Twilio voice ``voice`` (``None``: the console's voice for it)."""

    digit: str
    language: str
    text: str
    voice: str | None = None


def language_menu_twiml(prompts: Sequence[MenuPrompt], *, action_url: str, timeout_s: int) -> str:
    """The keypad language menu: every option announced in its own language and voice inside
    ``<Gather numDigits="1" timeout action method="POST">``, the whole ``<Gather>`` twice
    (``MENU_ROUNDS``), then ``<Redirect>`` to ``action_url``.

    Twilio (https://www.twilio.com/docs/voice/twiml/gather): a key pressed during or after the
    prompts ends the ``<Gather>`` and POSTs ``action_url`` with ``Digits``; ``timeout`` seconds
    without a key after the prompts move on to the next verb, so the second round repeats the
    menu and the ``<Redirect>`` then POSTs ``action_url`` with no ``Digits`` (= nothing pressed,
    the caller gets the next rule's language). ``parse_gather_digits`` reads either request.

    Error handling: ``ValueError`` for an empty menu or a timeout below 1 s.
    """
    if not prompts:
        msg = "a language menu needs at least one option"
        raise ValueError(msg)
    if timeout_s < 1:
        msg = f"<Gather timeout> must be a positive number of seconds, got {timeout_s}"
        raise ValueError(msg)
    response = VoiceResponse()
    for _ in range(MENU_ROUNDS):
        gather = response.gather(
            input="dtmf", num_digits=1, timeout=timeout_s, action=action_url, method="POST"
        )
        for prompt in prompts:
            voice = {"voice": prompt.voice} if prompt.voice else {}
            gather.say(prompt.text, language=say_language(prompt.language), **voice)
    response.redirect(action_url, method="POST")
    return str(response)


def parse_gather_digits(form: Mapping[str, str]) -> str:
    """The key the caller pressed, from the menu's action request: Twilio's ``Digits`` form
    field, stripped; ``""`` when there is none (the final ``<Redirect>``: nothing pressed).
    Never raises; what the key means is for ``LanguageRules.decide``."""
    return str(form.get("Digits", "")).strip()


def language_menu_url(public_url: str) -> str:
    """The menu's ``<Gather action>``: ``/twiml/client/language``. The request carries the
    caller's ``CallSid`` and ``From`` like the incoming-call webhook, so it needs no call id."""
    return http_url(public_url, "/twiml/client/language")
