"""The parts of Palabra's translations, in order (sans-IO).

A transcription's translation may come in several parts, numbered by ``translation_part_id``
from 0, each a piece of the text with its own speech, one after another (the official SDK and
third-party clients group audio by ``(transcription_id, translation_part_id, language)``:
https://github.com/PalabraAI/palabra-ai-python, ``events.py``). callbridge plays each part as
its own utterance and shows the transcription's whole translation:

- speech: part ``p`` of transcription ``t`` is the listener's utterance ``utterance_key(t, p)``:
  ``t`` itself for part 0 (the id every transcript event and ``played`` mark already use), and
  ``t#p`` after it; ``transcription_of`` maps a key back. Parts play in part order: a chunk of
  a part that a later part has already followed is late and dropped (``late_chunks``), so
  nothing plays twice or out of order.
- text: a translation (or partial translation) of part ``p`` becomes the parts' texts so far,
  joined in part order (with a space, none for languages written without spaces between words).

Memory: the last ``KEPT`` transcriptions are remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, TypeVar

import attrs

from callbridge.palabra.events import Transcript

__all__ = ["KEPT", "TranslationParts", "transcription_of", "utterance_key"]

KEPT: Final = 64
_V = TypeVar("_V")
_SEPARATOR: Final = "#"
# Written without spaces between words: their parts join with nothing between them.
_UNSPACED: Final = frozenset({"ja", "zh", "th", "lo", "km", "my"})


def utterance_key(transcription_id: str, part: int) -> str:
    """The listener's utterance id of one part's speech (see the module docstring)."""
    return transcription_id if part == 0 else f"{transcription_id}{_SEPARATOR}{part}"


def transcription_of(utterance_id: str) -> str:
    """The transcription an utterance id belongs to (the inverse of ``utterance_key``)."""
    head, separator, part = utterance_id.rpartition(_SEPARATOR)
    return head if separator and part.isdigit() and part[0] != "0" else utterance_id


@attrs.define
class TranslationParts:
    """One direction's parts (see the module docstring). ``late_chunks`` counts dropped
    chunks of parts already followed by a later one."""

    late_chunks: int = 0
    _latest: OrderedDict[str, int] = attrs.Factory(OrderedDict)
    _texts: OrderedDict[str, dict[int, str]] = attrs.Factory(OrderedDict)

    def speech_key(self, transcription_id: str, part: int) -> str | None:
        """The utterance a chunk of ``part`` belongs to, or None when it is late."""
        latest = self._latest.get(transcription_id)
        if latest is not None and part < latest:
            self.late_chunks += 1
            return None
        _remember(self._latest, transcription_id, part)
        return utterance_key(transcription_id, part)

    def whole(self, transcript: Transcript) -> Transcript:
        """``transcript`` with the whole translation so far as its text (translation kinds);
        other kinds, and a lone part 0, unchanged."""
        if transcript.kind not in ("translation", "translation_partial"):
            return transcript
        tid, part = transcript.transcription_id, transcript.translation_part_id
        texts = self._texts.get(tid)
        if texts is None:
            if part == 0:
                _remember(self._texts, tid, {0: transcript.text})
                return transcript
            texts = {}
        texts[part] = transcript.text
        _remember(self._texts, tid, texts)
        joiner = "" if transcript.language.split("-")[0].lower() in _UNSPACED else " "
        text = joiner.join(texts[p].strip() for p in sorted(texts) if texts[p].strip())
        return attrs.evolve(transcript, text=text)


def _remember(memory: OrderedDict[str, _V], key: str, value: _V) -> None:
    memory[key] = value
    memory.move_to_end(key)
    if len(memory) > KEPT:
        memory.popitem(last=False)
