"""What a Palabra link hands its consumer: frozen values, one per server message that matters.

``PalabraEvent`` is the union the call session reads from ``PalabraLink.events``. Control traffic
(acknowledgements, ``current_task``, end of stream) never reaches the consumer; the link uses it.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs
import numpy as np
from numpy.typing import NDArray

from callbridge.audio import PALABRA_RATE

__all__ = [
    "ConnectionLost",
    "LanguageDetected",
    "PalabraEvent",
    "ServerError",
    "ServerWarning",
    "SpeechChunk",
    "SpeechLost",
    "Transcript",
    "TranscriptKind",
]

# The one vocabulary of transcript text kinds (the store, the API and the pages use it too):
# Palabra's partial_transcription, validated_transcription, partial_translated_transcription and
# translated_transcription messages, in that order.
TranscriptKind: TypeAlias = Literal["partial", "final", "translation_partial", "translation"]


@attrs.frozen
class Transcript:
    """One transcript update. Every kind of one utterance shares ``transcription_id`` (source text,
    its translations and the translated speech). ``language`` is the language of ``text``: for the
    source kinds the detected language (useful when the task's source is ``auto``), for the
    translation kinds the target language. ``received_at`` is ``time.time()`` on arrival.

    ``translation_part_id`` (translation kinds): a long transcription's translation may come in
    several parts, numbered from 0, each a piece of the text with its own speech; the
    transcription's whole translation is the parts' texts in that order. Palabra sends the part
    id as a number on transcripts and as a string on audio (reference: Palabra's live traffic as
    recorded by third-party clients; clients group audio by ``(transcription_id,
    translation_part_id, language)``)."""

    kind: TranscriptKind
    transcription_id: str
    text: str
    language: str
    received_at: float
    translation_part_id: int = 0


@attrs.frozen(eq=False)
class SpeechChunk:
    """Translated speech: PCM s16le mono at 24 kHz (``pcm``, int16), 200 ms a chunk from the
    current server. ``last_chunk`` marks the speech's last chunk. With several
    parts (see ``Transcript.translation_part_id``) they come one after another, and sources do
    not say whether each part ends with the flag or only the last one; the call side therefore
    also takes a later part's first chunk as the end of the earlier part. Compared by identity
    (arrays have no useful ``==``)."""

    transcription_id: str
    language: str
    pcm: NDArray[np.int16]
    last_chunk: bool
    received_at: float
    translation_part_id: int = 0

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / PALABRA_RATE


@attrs.frozen
class ServerWarning:
    """A non-fatal ``warning`` from the server (``AUDIO_STREAM_TOO_FAST``, ``VOICE_NOT_FOUND``...)."""

    code: str
    message: str


@attrs.frozen
class ServerError:
    """An ``error`` after the task runs (non-fatal for the link), or a frame the link could not
    decode (code ``MALFORMED_MESSAGE``, ``desc`` names the size and the reason)."""

    code: str
    desc: str


@attrs.frozen
class LanguageDetected:
    """The speaker's language as Palabra detected it (the task's source was ``auto``): sent once
    when it first becomes known and again whenever it changes, before the transcript that showed
    it. ``language`` is Palabra's code (``ru``); ``received_at`` is ``time.time()``."""

    language: str
    transcription_id: str
    received_at: float


@attrs.frozen
class SpeechLost:
    """A chunk of this part's speech never reached the consumer (its queue was full, or the
    frame could not be decoded). The link drops the rest of that part's speech, so no sentence
    resumes in its middle after a hole: the consumer should end it with what it has."""

    transcription_id: str
    translation_part_id: int
    reason: str


@attrs.frozen
class ConnectionLost:
    """The connection dropped after its task ran; the link is reconnecting (``reason`` says
    why). Speech in flight on it will not continue: a new connection starts new
    transcriptions, so the consumer should end any utterance it was receiving."""

    reason: str


PalabraEvent: TypeAlias = (
    Transcript
    | SpeechChunk
    | ServerWarning
    | ServerError
    | LanguageDetected
    | SpeechLost
    | ConnectionLost
)
