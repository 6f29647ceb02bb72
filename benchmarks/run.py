"""Per-frame cost of callbridge's media path, against naive baselines run in the same process.

Run from the repo root: ``python -m benchmarks.run`` (``--quick`` for a faster, noisier pass).
Prints microseconds per 20 ms frame (median of several repeats) and the baseline / ours ratio;
no assertions. Baselines are what one would write first: per-sample Python mu-law, stateless
per-chunk ``samplerate.resample`` (which also clicks: it restarts
the filter at every chunk), a fresh-array numpy
mix, and stdlib ``json`` + ``base64``.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import sys
import timeit
from collections.abc import Callable

import numpy as np
import samplerate

from callbridge import audio
from callbridge.calls.mixer import ListenerMixer
from callbridge.sim import analysis
from callbridge.telephony import media_stream

_FRAMES_PER_S = 50


def _measure(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Median microseconds per call."""
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return float(np.median(times)) / number * 1e6


def _row(name: str, ours: float, baseline: float | None, baseline_name: str) -> None:
    ratio = f"{baseline / ours:6.1f}x" if baseline else "     -"
    base = f"{baseline:9.2f}" if baseline else "        -"
    print(
        f"{name:<34}{ours:9.2f}{ours * _FRAMES_PER_S / 1000:9.3f}{base}  {ratio}  {baseline_name}"
    )


def _quality() -> None:
    """What the resampler baseline costs in quality: frame-edge error vs a one-shot conversion."""
    x = analysis.sine(1000, 2.0, audio.TWILIO_RATE, 0.5)
    reference = samplerate.resample(x.astype(np.float32), 3.0, "sinc_fastest")
    up = audio.upsampler_8k_to_24k()
    ours = np.concatenate(
        [up.process(x[i : i + 160]) for i in range(0, len(x), 160)] + [up.flush()]
    )
    naive = np.concatenate(
        [
            samplerate.resample(x[i : i + 160].astype(np.float32), 3.0, "sinc_fastest")
            for i in range(0, len(x), 160)
        ]
    )

    def err_db(y: np.ndarray) -> float:
        return float(20 * np.log10(np.max(np.abs(y[: len(reference)] - reference)) / 32768 + 1e-12))

    print(
        f"\n1 kHz sine 8k->24k in 20 ms chunks, max error vs one-shot: ours {err_db(ours):.1f} dBFS,"
        f" stateless per chunk {err_db(naive):.1f} dBFS (a 50 Hz click train)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args(argv)
    number, repeat = (300, 3) if args.quick else (2000, 7)

    pcm8 = analysis.sine(1000, 0.02, audio.TWILIO_RATE, 0.5)
    pcm24 = analysis.sine(1000, 0.02, audio.PALABRA_RATE, 0.5)
    payload = audio.ulaw_encode(pcm8)
    decode_table = audio.ulaw_decode(bytes(range(256))).tolist()
    encode_table = list(audio.ulaw_encode(np.arange(-32768, 32768, dtype=np.int16)))

    def naive_decode() -> object:
        return np.array([decode_table[b] for b in payload], dtype=np.int16)

    def naive_encode() -> object:
        return bytes(encode_table[int(s) + 32768] for s in pcm8)

    up, down = audio.upsampler_8k_to_24k(), audio.downsampler_24k_to_8k()

    def naive_up() -> object:
        return audio.to_int16(samplerate.resample(pcm8.astype(np.float32), 3.0, "sinc_fastest"))

    def naive_down() -> object:
        return audio.to_int16(samplerate.resample(pcm24.astype(np.float32), 1 / 3, "sinc_fastest"))

    mixer = ListenerMixer("voice", 0.0, -6.0, -18.0, queue_limit_s=20.0)
    long_tr = analysis.sine(1300, 10.0, audio.TWILIO_RATE, 0.5)

    def mix_frame() -> object:
        # Keep both inputs fed so every frame mixes original + translation.
        mixer.push_original(pcm8)
        if mixer.translation_queue_ms < 100:
            mixer.push_translation("u", long_tr, last=False)
        return mixer.next_frame()

    gain, tgain = audio.db_to_gain(-18.0), audio.db_to_gain(0.0)

    def naive_mix() -> object:
        acc = pcm8.astype(np.float64) * gain + pcm8.astype(np.float64) * tgain
        return np.clip(np.rint(acc), -32768, 32767).astype(np.int16)

    sid = "MZ" + "0" * 32
    inbound = json.dumps(
        {
            "event": "media",
            "sequenceNumber": "4",
            "media": {
                "track": "inbound",
                "chunk": "2",
                "timestamp": "40",
                "payload": base64.b64encode(payload).decode(),
            },
            "streamSid": sid,
        }
    )

    def naive_parse() -> object:
        msg = json.loads(inbound)
        media = msg["media"]
        return (
            int(msg["sequenceNumber"]),
            int(media["chunk"]),
            int(media["timestamp"]),
            base64.b64decode(media["payload"], validate=True),
        )

    def naive_build() -> object:
        b64 = base64.b64encode(payload).decode()
        return json.dumps({"event": "media", "streamSid": sid, "media": {"payload": b64}})

    def mark_up() -> object:
        return up.process(pcm8)

    def mark_down() -> object:
        return down.process(pcm24)

    cases: list[tuple[str, Callable[[], object], Callable[[], object] | None, str]] = [
        ("ulaw decode (160 B)", lambda: audio.ulaw_decode(payload), naive_decode, "py loop"),
        ("ulaw encode (160 samples)", lambda: audio.ulaw_encode(pcm8), naive_encode, "py loop"),
        ("upsample 8k->24k (160->480)", mark_up, naive_up, "stateless resample"),
        ("downsample 24k->8k (480->160)", mark_down, naive_down, "stateless resample"),
        ("mixer next_frame (+pushes)", mix_frame, naive_mix, "numpy mix only"),
        (
            "parse inbound media message",
            lambda: media_stream.parse(inbound),
            naive_parse,
            "json+b64",
        ),
        (
            "build outbound media message",
            lambda: media_stream.media_message(sid, payload),
            naive_build,
            "json+b64",
        ),
    ]

    print(
        f"callbridge media benchmarks  python {platform.python_version()}  numpy {np.__version__}"
        f"  {platform.machine()}  ({number} calls x {repeat} repeats, median)"
    )
    print(f"{'operation':<34}{'us/frame':>9}{'ms/aud-s':>9}{'baseline':>9}  {'ratio':>6}  baseline")
    totals = {"in": 0.0, "out": 0.0}
    for name, ours_fn, base_fn, base_name in cases:
        ours = _measure(ours_fn, number, repeat)
        baseline = _measure(base_fn, max(1, number // 4), repeat) if base_fn else None
        _row(name, ours, baseline, base_name)
        if name.startswith(("ulaw decode", "upsample", "parse")):
            totals["in"] += ours
        if name.startswith(("ulaw encode", "downsample", "mixer", "build")):
            totals["out"] += ours
    print(
        f"\nper leg, DSP + codec only: inbound {totals['in']:.1f} us/frame "
        f"(parse, decode, upsample), outbound {totals['out']:.1f} us/frame "
        f"(downsample, mix, encode, build) = "
        f"{(totals['in'] + totals['out']) * _FRAMES_PER_S / 1000:.2f} ms CPU per leg-second"
    )
    print("ratio = baseline us / ours us (>1 means ours is faster)")
    _quality()
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
