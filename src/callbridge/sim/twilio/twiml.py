"""TwiML parsing for the fake Twilio: the verbs callbridge uses, as frozen values.

Supported: ``Say``, ``Play`` (``loop``; 0 = forever), ``Pause`` (``length``), ``Hangup``,
``Redirect``, ``Gather`` (``action``, ``method``, ``numDigits``, ``timeout``,
``actionOnEmptyResult``; nested ``Say``/``Play``/``Pause``), and ``Connect`` (``action``,
``method``) with one ``Stream`` (``url``, ``name``,
``track``, ``statusCallback``, ``statusCallbackMethod``) and its ``Parameter`` children. Other
verbs parse as :class:`Unsupported` and are skipped (recorded in the report). Names are
case-sensitive, as in Twilio.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import attrs

__all__ = [
    "Connect",
    "Document",
    "Gather",
    "Hangup",
    "Pause",
    "Play",
    "Redirect",
    "Say",
    "Stream",
    "TwimlError",
    "Unsupported",
    "Verb",
    "parse_twiml",
]

MAX_TWIML_BYTES = 64 * 1024  # error 11750 beyond this

Document = tuple[str, str]  # (TwiML text, URL it came from: base for relative URLs)


class TwimlError(ValueError):
    """Not a TwiML document (Twilio: error 12100 "Document parse failure")."""


@attrs.frozen
class Say:
    text: str
    language: str = "en-US"
    voice: str = ""
    loop: int = 1


@attrs.frozen
class Play:
    url: str
    loop: int = 1  # 0 = forever


@attrs.frozen
class Pause:
    length: float = 1.0


@attrs.frozen
class Hangup:
    pass


@attrs.frozen
class Redirect:
    url: str
    method: str = "POST"


@attrs.frozen
class Stream:
    url: str
    name: str = ""
    track: str = "inbound_track"
    status_callback: str = ""
    status_callback_method: str = "POST"
    parameters: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Connect:
    stream: Stream | None
    action: str = ""
    method: str = "POST"


@attrs.frozen
class Gather:
    """``<Gather>``: play ``prompts``, collect keys (Twilio: https://www.twilio.com/docs/voice/
    twiml/gather). ``action`` empty means the current document's URL; ``timeout`` in seconds."""

    action: str = ""
    method: str = "POST"
    num_digits: int | None = None
    timeout: int = 5
    action_on_empty_result: bool = False
    prompts: tuple[Say | Play | Pause, ...] = ()


@attrs.frozen
class Unsupported:
    tag: str


Verb = Say | Play | Pause | Hangup | Redirect | Connect | Gather | Unsupported


def parse_twiml(text: str) -> list[Verb]:
    if len(text.encode()) > MAX_TWIML_BYTES:
        msg = "TwiML response over 64 kB (11750)"
        raise TwimlError(msg)
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        msg = f"not XML: {exc}"
        raise TwimlError(msg) from exc
    if root.tag != "Response":
        msg = f"root element is <{root.tag}>, not <Response>"
        raise TwimlError(msg)
    return [_verb(el) for el in root]


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _verb(el: ET.Element) -> Verb:
    a = el.attrib
    text = (el.text or "").strip()
    match el.tag:
        case "Say":
            return Say(text, a.get("language", "en-US"), a.get("voice", ""), _int(a.get("loop"), 1))
        case "Play":
            return Play(text, _int(a.get("loop"), 1))
        case "Pause":
            return Pause(float(max(_int(a.get("length"), 1), 0)))
        case "Hangup":
            return Hangup()
        case "Redirect":
            return Redirect(text, a.get("method", "POST").upper())
        case "Gather":
            nested = [_verb(child) for child in el]
            digits = _int(a.get("numDigits"), 0)
            return Gather(
                action=a.get("action", ""),
                method=a.get("method", "POST").upper(),
                num_digits=digits if digits > 0 else None,
                timeout=max(_int(a.get("timeout"), 5), 1),
                action_on_empty_result=a.get("actionOnEmptyResult", "").lower() == "true",
                prompts=tuple(v for v in nested if isinstance(v, Say | Play | Pause)),
            )
        case "Connect":
            streams = [_stream(child) for child in el if child.tag == "Stream"]
            return Connect(
                streams[0] if streams else None,
                a.get("action", ""),
                a.get("method", "POST").upper(),
            )
        case _:
            return Unsupported(el.tag)


def _stream(el: ET.Element) -> Stream:
    a = el.attrib
    params = tuple(
        (p.attrib.get("name", ""), p.attrib.get("value", "")) for p in el if p.tag == "Parameter"
    )
    return Stream(
        url=a.get("url", ""),
        name=a.get("name", ""),
        track=a.get("track", "inbound_track"),
        status_callback=a.get("statusCallback", ""),
        status_callback_method=a.get("statusCallbackMethod", "POST").upper(),
        parameters=params,
    )
