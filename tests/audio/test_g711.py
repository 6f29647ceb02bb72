"""G.711 mu-law against an independent transcription of the ITU-T G.191 reference, and the rate constants."""

from __future__ import annotations

import numpy as np
import pytest

from callbridge import audio
from callbridge.audio import (
    g711,
    ulaw_decode,
    ulaw_encode,
)

# --- An independent G.711 reference: a loop-by-loop transcription of the ITU-T G.191 STL
# g711.c (ulaw_compress / ulaw_expand), deliberately sharing no code with the numpy tables.


def ref_ulaw_compress(sample: int) -> int:
    absno = (((~sample) >> 2) + 33) if sample < 0 else ((sample >> 2) + 33)
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    code = (high_nibble << 4) | low_nibble
    if sample >= 0:
        code |= 0x0080
    return code


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x0080 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa &= 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


class TestUlaw:
    def test_decode_matches_g711_for_all_256_codes(self) -> None:
        got = ulaw_decode(bytes(range(256)))
        assert got.dtype == np.int16
        assert got.tolist() == [ref_ulaw_expand(c) for c in range(256)]

    def test_encode_matches_g711_for_all_65536_inputs(self) -> None:
        pcm = np.arange(-32768, 32768, dtype=np.int16)
        got = ulaw_encode(pcm)
        assert isinstance(got, bytes)
        assert list(got) == [ref_ulaw_compress(s) for s in range(-32768, 32768)]

    def test_reference_spot_values(self) -> None:
        """Guards the reference itself with well-known G.711 facts."""
        assert ref_ulaw_compress(0) == 0xFF  # positive zero
        assert ref_ulaw_compress(-1) == 0x7F  # one's complement: -1 is negative zero
        assert ref_ulaw_expand(0x00) == -32124  # largest negative
        assert ref_ulaw_expand(0x80) == 32124
        assert ref_ulaw_expand(0xFF) == 0

    def test_encode_of_decode_is_identity_except_negative_zero(self) -> None:
        codes = bytes(range(256))
        again = ulaw_encode(ulaw_decode(codes))
        assert [c for c, d in zip(codes, again, strict=True) if c != d] == [0x7F]

    def test_encode_rejects_non_int16(self) -> None:
        with pytest.raises(TypeError, match="int16"):
            ulaw_encode(np.zeros(4, dtype=np.float32))

    def test_tables_are_read_only(self) -> None:
        with pytest.raises(ValueError, match="read-only"):
            g711._ULAW_DECODE[0] = 1


def test_constants() -> None:
    assert (audio.TWILIO_RATE, audio.PALABRA_RATE, audio.FRAME_MS) == (8000, 24000, 20)
    assert audio.TWILIO_FRAME_SAMPLES == audio.TWILIO_FRAME_BYTES == 160
    assert audio.PALABRA_FRAME_SAMPLES == 480
    assert audio.PALABRA_FRAME_BYTES == 960
