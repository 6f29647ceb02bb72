"""Sample rates and frame sizes: the one place they are defined.

Twilio Media Streams carry 8 kHz G.711 mu-law in 20 ms frames (Twilio, "Media Streams - WebSocket
Messages"); Palabra takes and returns 24 kHz PCM s16le (Palabra API, "Audio format").
Inside callbridge PCM is a 1-D ``numpy.ndarray`` of dtype int16 (``Pcm``).
"""

from __future__ import annotations

from typing import Final, TypeAlias

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FRAME_MS",
    "FRAME_S",
    "INT16_MAX",
    "PALABRA_FRAME_BYTES",
    "PALABRA_FRAME_SAMPLES",
    "PALABRA_RATE",
    "TWILIO_FRAME_BYTES",
    "TWILIO_FRAME_SAMPLES",
    "TWILIO_RATE",
    "Pcm",
]

Pcm: TypeAlias = NDArray[np.int16]

TWILIO_RATE: Final = 8000  # Hz, mu-law on both Twilio legs
PALABRA_RATE: Final = 24000  # Hz, PCM s16le to and from Palabra
FRAME_MS: Final = 20  # ms per media frame (Twilio's inbound packetisation)
FRAME_S: Final = FRAME_MS / 1000  # the same in seconds, for trio deadlines
TWILIO_FRAME_SAMPLES: Final = TWILIO_RATE * FRAME_MS // 1000  # 160 samples per 20 ms at 8 kHz
TWILIO_FRAME_BYTES: Final = TWILIO_FRAME_SAMPLES  # mu-law: one byte per sample
PALABRA_FRAME_SAMPLES: Final = PALABRA_RATE * FRAME_MS // 1000  # 480 samples per 20 ms at 24 kHz
PALABRA_FRAME_BYTES: Final = PALABRA_FRAME_SAMPLES * 2  # s16le: two bytes per sample
INT16_MAX: Final = 32767  # full scale for dBFS figures
