"""Test media whose content can be checked on arrival: video frames whose pixels
carry their frame number, and audio tones found by FFT."""

import fractions
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

BITS = 16
CHECK_BITS = 8
COLUMNS = 6
ROWS = 4  # 24 blocks: 16 bits of number and 8 bits of check
VIDEO_CLOCK = 90000
AUDIO_RATE = 48000


def _check(number: int) -> int:
    return (number * 37 + 11) & 0xFF


def numbered_image(number: int, width: int = 640, height: int = 360) -> np.ndarray:
    """A grey frame with big black/white blocks that spell `number` (RGB, uint8)."""
    bits = [(number >> i) & 1 for i in range(BITS)] + [
        (_check(number) >> i) & 1 for i in range(CHECK_BITS)
    ]
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    bw, bh = width // COLUMNS, height // ROWS
    for index, bit in enumerate(bits):
        row, col = divmod(index, COLUMNS)
        y0, x0 = row * bh, col * bw
        # leave a grey border so that blocks stay apart after scaling and coding
        image[y0 + bh // 8 : y0 + bh - bh // 8, x0 + bw // 8 : x0 + bw - bw // 8] = (
            255 if bit else 0
        )
    return image


def read_number(frame: av.VideoFrame) -> int | None:
    """The number a frame carries, or None when the check fails (a damaged frame)."""
    gray = frame.to_ndarray(format="gray")
    height, width = gray.shape
    bw, bh = width // COLUMNS, height // ROWS
    bits = []
    for index in range(BITS + CHECK_BITS):
        row, col = divmod(index, COLUMNS)
        y0, x0 = row * bh, col * bw
        block = gray[y0 + bh // 4 : y0 + bh - bh // 4, x0 + bw // 4 : x0 + bw - bw // 4]
        bits.append(1 if block.mean() > 128 else 0)
    number = sum(bit << i for i, bit in enumerate(bits[:BITS]))
    check = sum(bit << i for i, bit in enumerate(bits[BITS:]))
    return number if check == _check(number) else None


class NumberedVideoTrack(MediaStreamTrack):
    """Frames 1, 2, 3, … at `fps`, in real time."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 360, fps: int = 30, first: int = 1) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.first = first
        self.sent = 0
        self.sent_at: dict[int, float] = {}
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        import asyncio

        if self._start is None:
            self._start = time.monotonic()
        self.sent += 1
        due = self._start + (self.sent - 1) / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        number = self.first + self.sent - 1
        frame = av.VideoFrame.from_ndarray(
            numbered_image(number, self.width, self.height), format="rgb24"
        )
        frame.pts = (self.sent - 1) * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent_at[number] = time.monotonic()
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A sine at `frequency` Hz, 20 ms frames, in real time."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.samples = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        import asyncio

        if self._start is None:
            self._start = time.monotonic()
        count = AUDIO_RATE // 50
        due = self._start + self.samples / AUDIO_RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(count) + self.samples) / AUDIO_RATE
        wave = (np.sin(2 * np.pi * self.frequency * t) * self.amplitude * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.samples += count
        return frame


def dominant_frequencies(samples: np.ndarray, rate: int, count: int = 3) -> list[float]:
    """The `count` strongest frequencies in a mono signal, strongest first."""
    window = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    spectrum[freqs < 50] = 0
    peaks: list[float] = []
    for index in np.argsort(spectrum)[::-1]:
        f = float(freqs[index])
        if all(abs(f - p) > 30 for p in peaks):
            peaks.append(f)
        if len(peaks) == count:
            break
    return peaks


def tone_present(samples: np.ndarray, rate: int, frequency: float) -> bool:
    """Whether `frequency` stands well out of the spectrum of a mono signal."""
    window = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    band = (freqs > frequency - 15) & (freqs < frequency + 15)
    rest = (freqs > 50) & ~band
    return bool(spectrum[band].max() > 20 * np.median(spectrum[rest]))


def band_level(samples: np.ndarray, rate: int, frequency: float) -> float:
    """The spectrum's peak within 15 Hz of `frequency` (arbitrary units)."""
    window = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    band = (freqs > frequency - 15) & (freqs < frequency + 15)
    return float(spectrum[band].max())
