"""Test inputs: deterministic images and waveforms made in code, and real inputs (photos)
that ship with the package in ``hfmatrix/data`` (their sources in its README). No downloads."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
PHOTOS = ("chelsea", "coffee")  # a tabby cat; a cup of espresso on its saucer


def photo(name: str) -> Any:
    """A real photograph from hfmatrix/data as an RGB PIL image (``name`` from PHOTOS)."""
    from PIL import Image

    with Image.open(DATA / f"{name}.jpg") as image:
        return image.convert("RGB")


def synthetic_image(width: int = 64, height: int = 48) -> Any:
    """An RGB PIL image with smooth gradients and a sharp-edged square: the same pixels on
    every machine (integer arithmetic only)."""
    from PIL import Image

    pixels = bytearray()
    for y in range(height):
        for x in range(width):
            inside = width // 4 <= x < width // 2 and height // 4 <= y < height // 2
            pixels += bytes(
                (
                    (255 * x) // max(width - 1, 1),
                    (255 * y) // max(height - 1, 1),
                    40 if inside else (128 + 64 * ((x // 8 + y // 8) % 2)),
                )
            )
    return Image.frombytes("RGB", (width, height), bytes(pixels))


def sine_sweep(seconds: float = 1.0, rate: int = 16000, start_hz: float = 200.0,
               end_hz: float = 4000.0, amplitude: float = 0.5) -> Any:  # fmt: skip
    """A linear chirp from ``start_hz`` to ``end_hz`` as a float32 numpy array at ``rate``."""
    import numpy as np

    t = np.arange(int(seconds * rate), dtype=np.float64) / rate
    sweep = start_hz * t + (end_hz - start_hz) * t * t / (2 * seconds)
    return (amplitude * np.sin(2 * math.pi * sweep)).astype(np.float32)


SPEECH_RATE = 16000  # speech.wav: mono, 16-bit PCM at Whisper's sampling rate


def speech() -> tuple[Any, str]:
    """English speech from hfmatrix/data (speech.wav, made with espeak-ng) as a float32
    numpy array in [-1, 1) at SPEECH_RATE, and the text it speaks (speech.txt)."""
    import wave

    import numpy as np

    with wave.open(str(DATA / "speech.wav"), "rb") as wav:
        layout = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        if layout != (1, 2, SPEECH_RATE):
            raise ValueError(f"speech.wav: (channels, bytes, rate) {layout}, not (1, 2, 16000)")
        frames = wav.readframes(wav.getnframes())
    audio = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return audio, (DATA / "speech.txt").read_text(encoding="utf-8").strip()
