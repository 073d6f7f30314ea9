"""File time for one recorded stream, from its RTP-style timestamps and arrival times.

Each stream keeps its own clock (90 kHz video, 48 kHz audio), so spacing within a
stream is as the sender timed it. Where a stream sits in the file comes from the
wall clock: each packet should be written no later than it arrived. When packets
come in faster than real time (a joining subscriber is sent the last keyframe and
the frames after it at once; a stalled network lets go), the first ones were late,
and the stream is pulled back towards the earliest arrivals, by playing up to 10%
faster for a moment. That keeps audio and video together to within the network's
jitter, which is all a lesson needs.

A stream is placed afresh by arrival when its timestamps stop agreeing with the
wall clock (the sender restarted, a packet would land more than `max_ahead` after
its arrival or `resync_seconds` before it) or after `reset()` (a new connection).
So the file never runs more than `max_ahead` past the wall clock, and file time
never runs backwards, which the muxer would refuse.
"""

_WRAP = 1 << 32
_HALF = 1 << 31
MAX_SLEW = 10  # catch up by at most 1/10 of each packet's duration


class StreamClock:
    def __init__(
        self, clock_rate: int, resync_seconds: float = 5.0, max_ahead: float = 1.5
    ) -> None:
        self.clock_rate = clock_rate
        self._resync = round(resync_seconds * clock_rate)
        self._max_ahead = round(max_ahead * clock_rate)
        self._last_in: int | None = None  # the last raw timestamp
        self._extended = 0  # the last timestamp, unwrapped
        self._offset = 0  # file time minus unwrapped timestamp
        self._last_out: int | None = None
        self.resyncs = 0

    def reset(self) -> None:
        """The next packet comes from a new stream: place it by its arrival."""
        self._last_in = None

    def map(self, timestamp: int, arrival: float, origin: float) -> int | None:
        """File time of a packet, in clock units since `origin` (the file's start on
        the wall clock), or None for a duplicate or a packet older than the last."""
        wall = round((arrival - origin) * self.clock_rate)
        if self._last_in is None:
            return self._anchor(timestamp, wall)
        delta = (timestamp - self._last_in) % _WRAP
        if delta >= _HALF:
            delta -= _WRAP
        if delta <= 0 and -delta < self._resync:
            return None
        extended = self._extended + delta
        out = extended + self._offset
        early = out - wall
        if early > self._max_ahead or -early > self._resync:
            self.resyncs += 1
            return self._anchor(timestamp, wall)
        if early > 0:
            slew = min(early, delta // MAX_SLEW)
            self._offset -= slew
            out -= slew
        self._last_in = timestamp
        self._extended = extended
        self._last_out = out
        return out

    def _anchor(self, timestamp: int, wall: int) -> int:
        out = max(0, wall)
        if self._last_out is not None:
            out = max(out, self._last_out + 1)
        self._last_in = timestamp
        self._extended = timestamp
        self._offset = out - timestamp
        self._last_out = out
        return out
