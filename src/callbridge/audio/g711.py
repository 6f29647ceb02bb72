"""G.711 mu-law by lookup table.

mu-law follows the ITU-T G.191 reference implementation of G.711 (STL ``g711.c``,
``ulaw_compress``/``ulaw_expand``): negative samples take their magnitude as a one's complement,
so the encoder is exactly symmetric. The deprecated ``audioop.lin2ulaw`` (Sun ``g711.c``) uses a
two's complement there and differs by one quantisation step for 508 of the 65,536 negative
inputs that sit on a decision boundary; decoding is identical.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from callbridge.audio.frames import Pcm

__all__ = ["ulaw_decode", "ulaw_encode"]


def _ulaw_decode_table() -> NDArray[np.int16]:
    # ulaw_expand: magnitude = ((mantissa << 3) + 0x84) << exponent) - 0x84 on the inverted code.
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _ulaw_encode_table() -> NDArray[np.uint8]:
    # Indexed by the int16 sample viewed as uint16, so encoding is one fancy-index.
    x = np.arange(65536, dtype=np.int32)
    x = np.where(x >= 32768, x - 65536, x)
    absno = np.where(x < 0, (~x) >> 2, x >> 2) + 33  # one's complement for negatives (G.191)
    absno = np.minimum(absno, 0x1FFF)
    # segno = 1 + bit length of (absno >> 6); absno >> 6 < 128 so a small table does it.
    bit_length = np.array([int(v).bit_length() for v in range(128)], dtype=np.int32)
    segno = 1 + bit_length[absno >> 6]
    high = 8 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    code = (high << 4) | low
    code = np.where(x >= 0, code | 0x80, code)
    table: NDArray[np.uint8] = code.astype(np.uint8)
    return table


# Module constants, never mutated: the flags make an accidental write raise.
_ULAW_DECODE: Final = _ulaw_decode_table()
_ULAW_ENCODE: Final = _ulaw_encode_table()
_ULAW_DECODE.flags.writeable = False
_ULAW_ENCODE.flags.writeable = False


def ulaw_decode(payload: bytes) -> Pcm:
    """G.711 mu-law bytes -> int16 PCM (one sample per byte). Returns a new array."""
    pcm: Pcm = _ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]
    return pcm


def ulaw_encode(pcm: Pcm) -> bytes:
    """int16 PCM -> G.711 mu-law bytes (one byte per sample).

    Error handling: a dtype other than int16 raises ``TypeError`` (a float array would be
    reinterpreted as garbage by the uint16 view).
    """
    if pcm.dtype != np.int16:
        msg = f"ulaw_encode needs int16 PCM, got {pcm.dtype}"
        raise TypeError(msg)
    return _ULAW_ENCODE[pcm.view(np.uint16)].tobytes()
