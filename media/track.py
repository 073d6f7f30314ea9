"""The down track: what one subscriber's sender reads from a source."""

import asyncio
import fractions
from collections import deque
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class ForwardTrack(MediaStreamTrack):
    """Yields a source's encoded frames as `av.Packet`s, so that aiortc's sender only
    packetizes them.

    The queue is bounded. A video subscriber that falls behind loses whole frames up
    to the next keyframe (never single delta frames: aiortc rewrites picture ids, so
    the decoder could not notice the gap and would decode against a wrong reference).
    Audio drops its oldest frame instead. Either way memory never grows and nobody
    else waits.
    """

    def __init__(
        self,
        kind: str,
        max_frames: int,
        on_keyframe_needed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._max_frames = max_frames
        self._on_keyframe_needed = on_keyframe_needed
        self._queue: deque[av.Packet] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.waiting_for_keyframe = kind == "video"
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.overflows = 0

    def put(self, packet: av.Packet, keyframe: bool, pts: int | None = None) -> None:
        """Queue `packet` for the sender; `pts`, when given, is this subscriber's
        timestamp for it (its timeline after a layer switch)."""
        if self.readyState != "live":
            return
        if pts is not None and pts != packet.pts:
            restamped = av.Packet(bytes(packet))
            restamped.pts = restamped.dts = pts
            restamped.time_base = packet.time_base
            packet = restamped
        if self.waiting_for_keyframe:
            if not keyframe:
                self.frames_dropped += 1
                return
            self.waiting_for_keyframe = False
        queue = self._queue
        if len(queue) >= self._max_frames:
            self.overflows += 1
            if self.kind == "video":
                self.frames_dropped += len(queue)
                queue.clear()
                if not keyframe:
                    self.frames_dropped += 1
                    self.waiting_for_keyframe = True
                    if self._on_keyframe_needed is not None:
                        self._on_keyframe_needed()
                    return
            else:
                queue.popleft()
                self.frames_dropped += 1
        queue.append(packet)
        self.frames_in += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def new_layer(self) -> None:
        """What follows comes from another layer or source (see FastSender)."""

    def restart(self) -> None:
        """Forget queued frames and wait for the next keyframe (a new upstream)."""
        self._queue.clear()
        self.waiting_for_keyframe = self.kind == "video"

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.frames_out += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def time_base(clock_rate: int) -> fractions.Fraction:
    return fractions.Fraction(1, clock_rate)
