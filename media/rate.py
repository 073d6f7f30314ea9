"""Bit rates over a sliding window, cheap enough for every frame."""

import time
from collections import deque
from collections.abc import Callable


class RateMeter:
    def __init__(self, window: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._total = 0
        self.count = 0

    def add(self, size: int, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        self._samples.append((now, size))
        self._total += size
        self.count += 1
        self._expire(now)

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        samples = self._samples
        while samples and samples[0][0] < horizon:
            self._total -= samples.popleft()[1]

    def bps(self, now: float | None = None) -> float:
        """Bits per second over the window (0 when nothing arrived lately)."""
        now = self._clock() if now is None else now
        self._expire(now)
        return self._total * 8 / self._window
