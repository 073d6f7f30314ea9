"""One continuous audio track from decoded frames that may have holes or overlaps.

A lost Opus packet, a segment whose audio starts after its video, or a lesson
without a microphone would leave the output's audio with gaps, which some players
treat as the end of the track. Here a hole becomes silence and an overlap is cut,
so that every sample sits at its place on the timeline (to within `TOLERANCE`),
and the frames come out in the size the AAC encoder takes.
"""

import fractions
from collections.abc import Callable, Iterator

import av
import numpy as np

RATE = 48000
CHANNELS = 2
AAC_FRAME = 1024
TOLERANCE = RATE // 100  # 10 ms of drift is left alone rather than patched


class Soundtrack:
    def __init__(
        self,
        frame_size: int = AAC_FRAME,
        overlay: Callable[[int, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """`overlay(first sample, data)` may add to each frame before it goes out
        (the stage audio: recorder/stagemix.py)."""
        self.frame_size = frame_size
        self._overlay = overlay
        self.samples = 0  # samples accepted so far, silence included
        self.emitted = 0
        self.silence_added = 0
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0

    def add(self, time: float, frame: av.AudioFrame) -> Iterator[av.AudioFrame]:
        """Place a decoded frame at `time` seconds; yield the frames now complete."""
        for converted in self._resampler.resample(frame):
            data = converted.to_ndarray().reshape(CHANNELS, -1)
            target = round(time * RATE)
            time += data.shape[1] / RATE
            if target > self.samples + TOLERANCE:
                hole = target - self.samples
                self.silence_added += hole
                self._push(np.zeros((CHANNELS, hole), dtype=np.float32))
            elif target < self.samples - TOLERANCE:
                data = data[:, self.samples - target :]
            if data.shape[1]:
                self._push(data.astype(np.float32, copy=False))
        yield from self._frames()

    def fill_to(self, time: float) -> Iterator[av.AudioFrame]:
        """Silence up to `time` seconds, then the frames now complete."""
        hole = round(time * RATE) - self.samples
        if hole > 0:
            self.silence_added += hole
            self._push(np.zeros((CHANNELS, hole), dtype=np.float32))
        yield from self._frames()

    def flush(self) -> Iterator[av.AudioFrame]:
        """The last, shorter frame."""
        yield from self._frames()
        if self._pending_samples:
            yield self._frame(np.concatenate(self._pending, axis=1))
            self._pending, self._pending_samples = [], 0

    def _push(self, data: np.ndarray) -> None:
        self._pending.append(data)
        self._pending_samples += data.shape[1]
        self.samples += data.shape[1]

    def _frames(self) -> Iterator[av.AudioFrame]:
        if self._pending_samples < self.frame_size:
            return
        data = np.concatenate(self._pending, axis=1)
        whole = data.shape[1] // self.frame_size * self.frame_size
        for start in range(0, whole, self.frame_size):
            yield self._frame(data[:, start : start + self.frame_size])
        rest = data[:, whole:]
        self._pending = [rest] if rest.shape[1] else []
        self._pending_samples = rest.shape[1]

    def _frame(self, data: np.ndarray) -> av.AudioFrame:
        if self._overlay is not None:
            data = self._overlay(self.emitted, data)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data), format="fltp", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = self.emitted
        frame.time_base = fractions.Fraction(1, RATE)
        self.emitted += data.shape[1]
        return frame
