"""A source's frames handed to its sinks in order, a slice of the event loop at a time.

Handing a 720p keyframe (about 40 packets) to 128 subscribers is some 5,000 packets
to protect and send: tens of milliseconds in one run of the loop, during which no
RTCP is read, no other lesson's frame goes out and no timer fires (the loop lag
that docs/benchmarks.md measures). So a frame's fan-out stops when its slice is
used up and carries on from the next subscriber in a later turn of the loop. Frames
that come meanwhile queue behind it: every sink still gets every frame in order,
and other sources (the lesson's audio above all) go out in between. A server that
cannot keep up at all stops cutting (`BACKLOG`).
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import av

from media.delay import FORWARD_DELAY

Sink = Callable[[av.Packet, bool], None]
SLICE = 0.004  # seconds of fan-out before the loop's other callbacks get a turn
# Frames waiting beyond which they all go out at once, uncut: a server that cannot
# keep up falls behind as it would without slices (its sockets drop), not by a
# queue that grows without end.
BACKLOG = 30


@dataclass
class _Frame:
    packet: av.Packet
    keyframe: bool
    sinks: list[tuple[Hashable, Sink]]
    arrived: float | None  # when its first packet arrived (perf_counter), if known
    next: int = 0  # the first sink still to get it
    cut: bool = False  # its fan-out took more than one turn of the loop


class FanOut:
    """Hands frames to the sinks in `sinks` (the source's own, live dictionary):
    those there when the frame came that are still there when their turn comes."""

    def __init__(self, sinks: dict[Hashable, Sink], slice_seconds: float = SLICE) -> None:
        self._sinks = sinks
        self._slice = slice_seconds
        self._backlog: deque[_Frame] = deque()
        self._scheduled = False
        self.sliced = 0  # frames whose fan-out took more than one turn of the loop

    def send(self, packet: av.Packet, keyframe: bool, arrived: float | None = None) -> None:
        frame = _Frame(packet, keyframe, list(self._sinks.items()), arrived)
        if self._backlog:
            self._backlog.append(frame)
            if len(self._backlog) > BACKLOG:
                self._catch_up()
        elif not self._run(frame):
            self._backlog.append(frame)
            self._schedule()

    @property
    def waiting(self) -> int:
        """Frames not yet handed to all their sinks."""
        return len(self._backlog)

    def clear(self) -> None:
        self._backlog.clear()

    def _catch_up(self) -> None:
        """Everything waiting, now, uncut: this server cannot keep up at all."""
        backlog = self._backlog
        while backlog:
            self._run(backlog[0], cut=False)
            backlog.popleft()

    def _run(self, frame: _Frame, cut: bool = True) -> bool:
        """Hand `frame` on from where it stopped; False when the slice ran out first
        (and a loop is running to come back on)."""
        deadline = time.perf_counter() + self._slice
        sinks, live = frame.sinks, self._sinks
        count = len(sinks)
        while frame.next < count:
            owner, sink = sinks[frame.next]
            frame.next += 1  # first: a sink that raises is not called again
            if live.get(owner) == sink:
                sink(frame.packet, frame.keyframe)
            if (
                cut
                and frame.next < count
                and time.perf_counter() > deadline
                and _loop() is not None
            ):
                if not frame.cut:
                    frame.cut = True
                    self.sliced += 1
                return False
        if frame.arrived is not None and count:
            FORWARD_DELAY.record(time.perf_counter() - frame.arrived)
        return True

    def _schedule(self) -> None:
        loop = _loop()
        if loop is not None and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        backlog = self._backlog
        try:
            while backlog:
                if not self._run(backlog[0]):
                    self._schedule()
                    return
                backlog.popleft()
        except BaseException:
            self._schedule()  # a sink failed: the others still get their frames
            raise


def _loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
