"""Pure DSP for callbridge: G.711 mu-law, streaming resamplers, framing, gains and hold audio.

Inside callbridge PCM is a 1-D ``numpy.ndarray`` of dtype int16 (``Pcm``). Twilio legs carry
8 kHz mu-law in 20 ms frames; Palabra takes and returns 24 kHz PCM s16le.

Nothing here does I/O except :func:`read_wav_mono` and :func:`write_wav`. The modules:
``frames`` (rates and frame sizes), ``g711`` (mu-law), ``resample`` (stateful resamplers),
``polyphase`` (the call's exact 3:1 FIR), ``fifo`` (``PcmFifo``), ``levels`` (scales and gains), ``sources`` (hold chime, WAV files).
"""

from callbridge.audio.fifo import PcmFifo
from callbridge.audio.frames import (
    FRAME_MS,
    FRAME_S,
    INT16_MAX,
    PALABRA_FRAME_BYTES,
    PALABRA_FRAME_SAMPLES,
    PALABRA_RATE,
    TWILIO_FRAME_BYTES,
    TWILIO_FRAME_SAMPLES,
    TWILIO_RATE,
    Pcm,
)
from callbridge.audio.g711 import ulaw_decode, ulaw_encode
from callbridge.audio.levels import db_to_gain, samples_to_ms, to_int16
from callbridge.audio.polyphase import Down3, Up3
from callbridge.audio.resample import (
    Resampler,
    StreamResampler,
    downsampler_24k_to_8k,
    upsampler_8k_to_24k,
)
from callbridge.audio.sources import hold_chime, load_hold_audio, read_wav_mono, write_wav

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
    "Down3",
    "Pcm",
    "PcmFifo",
    "Resampler",
    "StreamResampler",
    "Up3",
    "db_to_gain",
    "downsampler_24k_to_8k",
    "hold_chime",
    "load_hold_audio",
    "read_wav_mono",
    "samples_to_ms",
    "to_int16",
    "ulaw_decode",
    "ulaw_encode",
    "upsampler_8k_to_24k",
    "write_wav",
]
