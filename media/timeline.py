"""One continuous timestamp line per source, across publisher reconnects.

Subscribers' senders number their RTP timestamps from the pts they are given. When
a publisher reconnects, its new receiver starts again from zero, so the source
rebases the new stream to continue where the old one stopped, plus the wall-clock
gap. 32-bit RTP wrap-around is unwrapped on the way.
"""

import time
from collections.abc import Callable

_WRAP = 1 << 32
_HALF = 1 << 31


class Timeline:
    def __init__(self, clock_rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock_rate = clock_rate
        self._clock = clock
        self._last_in: int | None = None
        self._last_out: int | None = None
        self._last_wall = 0.0

    def restart(self) -> None:
        """The next timestamp comes from a new upstream stream."""
        self._last_in = None

    def map(self, timestamp: int) -> int:
        now = self._clock()
        if self._last_in is None:
            if self._last_out is None:
                out = 0
            else:
                gap = max(1, round((now - self._last_wall) * self.clock_rate))
                out = self._last_out + gap
        else:
            delta = (timestamp - self._last_in) % _WRAP
            if delta >= _HALF:
                delta -= _WRAP  # reordered: an earlier timestamp than the last one
            assert self._last_out is not None
            out = self._last_out + delta
            if delta < 0:
                return max(out, 0)
        self._last_in = timestamp
        self._last_out = out
        self._last_wall = now
        return out
