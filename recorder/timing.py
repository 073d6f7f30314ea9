"""File time for one recorded stream, from its RTP-style timestamps and arrival times.

Each stream keeps its own clock (90 kHz video, 48 kHz audio), so spacing within a
stream is exactly as the sender timed it. Where a stream starts in the file comes
from the wall-clock arrival of its first packet, which is how audio and video line
up: a lesson does not need lip-sync tighter than the network's jitter.

A stream is re-anchored on arrival when its timestamps stop agreeing with the wall
clock (the sender restarted, or a new connection began: `reset()`), and file time
never runs backwards, which the muxer would refuse.
"""

_WRAP = 1 << 32
_HALF = 1 << 31


class StreamClock:
    def __init__(self, clock_rate: int, resync_seconds: float = 5.0) -> None:
        self.clock_rate = clock_rate
        self._resync = resync_seconds
        self._last_in: int | None = None  # the last raw timestamp
        self._extended = 0  # the last timestamp, unwrapped
        self._anchor_in = 0  # unwrapped timestamp at the anchor
        self._anchor_out = 0  # file time at the anchor
        self._anchor_arrival = 0.0
        self._last_out: int | None = None
        self.resyncs = 0

    def reset(self) -> None:
        """The next packet comes from a new stream: place it by its arrival."""
        self._last_in = None

    def map(self, timestamp: int, arrival: float, origin: float) -> int | None:
        """File time of a packet, in clock units since `origin` (the file's start on
        the wall clock), or None for a duplicate or a packet older than the last."""
        if self._last_in is None:
            return self._anchor(timestamp, arrival, origin)
        delta = (timestamp - self._last_in) % _WRAP
        if delta >= _HALF:
            delta -= _WRAP
        if delta <= 0 and -delta < self._resync * self.clock_rate:
            return None
        extended = self._extended + delta
        media = (extended - self._anchor_in) / self.clock_rate
        wall = arrival - self._anchor_arrival
        if abs(media - wall) > self._resync:
            self.resyncs += 1
            return self._anchor(timestamp, arrival, origin)
        self._last_in = timestamp
        self._extended = extended
        out = self._anchor_out + (extended - self._anchor_in)
        self._last_out = out
        return out

    def _anchor(self, timestamp: int, arrival: float, origin: float) -> int:
        out = max(0, round((arrival - origin) * self.clock_rate))
        if self._last_out is not None:
            out = max(out, self._last_out + 1)
        self._last_in = timestamp
        self._extended = timestamp
        self._anchor_in = timestamp
        self._anchor_out = out
        self._anchor_arrival = arrival
        self._last_out = out
        return out
