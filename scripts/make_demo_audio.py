#!/usr/bin/env python3
"""Generate the demo conversation assets shared by the Twilio and Palabra simulators.

Writes ``src/callbridge/sim/assets/demo/script.json`` plus one WAV per spoken line: an English
caller books an appointment with a Russian-speaking operator. Every turn has

- source audio: the line in the speaker's language, 8 kHz mono 16-bit WAV (what the phone plays);
- translated audio: the translation in the listener's language, 24 kHz mono 16-bit WAV (what the
  fake Palabra returns as ``output_audio_data``).

Needs ``espeak-ng`` and ``sox`` (``apt-get install -y espeak-ng sox``). The output is deterministic
for a given espeak-ng/sox version (no dither); the generated files are committed, so this script only has to
run again when the conversation changes.

Usage: ``python scripts/make_demo_audio.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

__all__ = ["TURNS", "main"]

CALLER_LANGUAGE = "en"
OPERATOR_LANGUAGE = "ru"
VOICES = {"en": "en-us", "ru": "ru"}
# Words per minute: a little brisker than espeak's default 175 keeps the assets small.
SPEED_WPM = 165
SOURCE_RATE = 8000  # what a Twilio leg carries
TRANSLATED_RATE = 24000  # what Palabra returns
# Trim leading silence and shorten every pause longer than 0.25 s to 0.25 s, so that one line
# stays ONE utterance for a VAD at Palabra's minimum 0.3 s confirmation silence (espeak pauses
# ~0.4 s between sentences); trim the tail, normalise to -3 dBFS, 50 ms of air on each side.
_SOX_EFFECTS = (
    "silence -l 1 0.02 0.5% -1 0.25 0.5% reverse silence 1 0.02 0.5% reverse"
    " gain -n -3 pad 0.05 0.05"
)

# (speaker, source text, translated text, gap before the turn in seconds)
TURNS: tuple[tuple[str, str, str, float], ...] = (
    (
        "caller",
        "Hello, I would like to book an appointment with the doctor.",
        "Здравствуйте, я хотел бы записаться на приём к врачу.",
        # The caller's stream starts while the operator still rings; speak once they are on.
        3.0,
    ),
    (
        "operator",
        "Здравствуйте! На какой день вам удобно?",
        "Hello! Which day works for you?",
        1.0,
    ),
    ("caller", "Tomorrow morning, if possible.", "Завтра утром, если возможно.", 1.0),
    (
        "operator",
        "Завтра в десять утра свободно. Вам подходит?",
        "Tomorrow at ten in the morning is free. Does that suit you?",
        1.0,
    ),
    ("caller", "Yes, that is perfect. Thank you very much.", "Да, отлично. Большое спасибо.", 1.0),
    ("operator", "Хорошо, вы записаны. До свидания!", "Great, you are booked. Goodbye!", 1.0),
)


def _language_of(speaker: str) -> str:
    return CALLER_LANGUAGE if speaker == "caller" else OPERATOR_LANGUAGE


def _listener_language(speaker: str) -> str:
    return OPERATOR_LANGUAGE if speaker == "caller" else CALLER_LANGUAGE


def _speak(text: str, language: str, rate: int, out: Path, workdir: Path) -> float:
    """espeak-ng -> raw WAV, then sox: resample, mono 16-bit, trim silence, normalise, pad."""
    raw = workdir / (out.stem + "_raw.wav")
    subprocess.run(
        ["espeak-ng", "-v", VOICES[language], "-s", str(SPEED_WPM), "-w", str(raw), text],
        check=True,
    )
    subprocess.run(
        [
            *(
                "sox",
                "-D",
                str(raw),
                "-r",
                str(rate),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
            ),
            str(out),
            *_SOX_EFFECTS.split(),
        ],
        check=True,
    )
    with wave.open(str(out), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "src/callbridge/sim/assets/demo"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args(argv)
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install -y espeak-ng sox", file=sys.stderr)
            return 1
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    turns = []
    counters = {"caller": 0, "operator": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for speaker, source_text, translated_text, gap in TURNS:
            counters[speaker] += 1
            stem = f"{speaker}_{counters[speaker]:02d}"
            source_s = _speak(
                source_text, _language_of(speaker), SOURCE_RATE, out / f"{stem}.wav", Path(tmp)
            )
            translated_s = _speak(
                translated_text,
                _listener_language(speaker),
                TRANSLATED_RATE,
                out / f"{stem}_tr.wav",
                Path(tmp),
            )
            turns.append(
                {
                    "speaker": speaker,
                    "source_text": source_text,
                    "translated_text": translated_text,
                    "source_audio": f"{stem}.wav",
                    "translated_audio": f"{stem}_tr.wav",
                    "gap_before_s": gap,
                    "source_duration_s": round(source_s, 3),
                    "translated_duration_s": round(translated_s, 3),
                }
            )
    script = {
        "caller_language": CALLER_LANGUAGE,
        "operator_language": OPERATOR_LANGUAGE,
        "turns": turns,
    }
    (out / "script.json").write_text(
        json.dumps(script, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {len(turns)} turns to {out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
