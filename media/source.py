"""A source: one up track (a camera, a microphone) fanned out to its subscribers.

A source outlives its publisher's connection: when the publisher reconnects, the new
connection attaches to the same source and every subscriber carries on, with
continuous timestamps, from the next keyframe.
"""

import logging
import time
from collections.abc import Callable

import av

from media.bitstream import VP8, is_keyframe, vp8_size
from media.keyframe import KeyframeRequester
from media.timeline import Timeline
from media.track import ForwardTrack, time_base

logger = logging.getLogger(__name__)


class Source:
    def __init__(
        self,
        name: str,
        kind: str,
        codec: str,
        clock_rate: int,
        *,
        keyframe_min_interval: float = 1.0,
        keyframe_cache_seconds: float = 1.0,
        queue_frames: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.kind = kind
        self.codec = codec.lower()
        self.clock_rate = clock_rate
        self._clock = clock
        self._time_base = time_base(clock_rate)
        self._timeline = Timeline(clock_rate, clock)
        self._queue_frames = queue_frames
        self._cache_seconds = keyframe_cache_seconds
        self._subscribers: set[ForwardTrack] = set()
        self._upstream: Callable[[], None] | None = None
        self._requester = KeyframeRequester(self._ask_upstream, keyframe_min_interval, clock)
        # The last keyframe and the frames after it, for subscribers that join.
        self._gop: list[av.Packet] = []
        self._gop_time = 0.0
        self._listeners: list[Callable[[av.Packet, bool], None]] = []
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0
        self.size: tuple[int, int] | None = None
        self.last_frame_time: float | None = None

    # -- the publishing side -------------------------------------------------

    @property
    def live(self) -> bool:
        return self._upstream is not None

    def attach(self, request_keyframe: Callable[[], None]) -> None:
        """A publisher connection now feeds this source; `request_keyframe` asks it
        for a keyframe."""
        self._upstream = request_keyframe
        self._timeline.restart()
        self._gop = []
        for track in self._subscribers:
            track.restart()
        if self.kind == "video":
            self.request_keyframe()

    def detach(self, request_keyframe: Callable[[], None] | None = None) -> None:
        """The publisher left. With `request_keyframe`, only if it is still the one
        attached (a newer connection may have taken over)."""
        if request_keyframe is not None and self._upstream != request_keyframe:
            return
        self._upstream = None
        self._gop = []

    def push(self, data: bytes, timestamp: int) -> None:
        """One encoded frame from the publisher (event loop)."""
        keyframe = self.kind != "video" or is_keyframe(self.codec, data)
        packet = av.Packet(data)
        packet.pts = self._timeline.map(timestamp)
        packet.dts = packet.pts
        packet.time_base = self._time_base
        now = self._clock()
        self.frames += 1
        self.bytes += len(data)
        self.last_frame_time = now
        if self.kind == "video":
            if keyframe:
                self.keyframes += 1
                self._requester.keyframe_arrived()
                self._gop = [packet]
                self._gop_time = now
                if self.codec == VP8:
                    self.size = vp8_size(data) or self.size
            elif self._gop and len(self._gop) < self._queue_frames:
                self._gop.append(packet)
            else:
                self._gop = []
        for track in self._subscribers:
            track.put(packet, keyframe)
        for listener in self._listeners:
            listener(packet, keyframe)

    # -- the subscribing side ------------------------------------------------

    def subscribe(self) -> ForwardTrack:
        """A new down track. Video starts from the cached keyframe when it is recent,
        otherwise from the next one, which is requested (coalesced)."""
        track = ForwardTrack(self.kind, self._queue_frames, self.request_keyframe)
        self._subscribers.add(track)
        if self.kind == "video":
            if self._gop and self._clock() - self._gop_time <= self._cache_seconds:
                for i, packet in enumerate(self._gop):
                    track.put(packet, i == 0)
            if track.waiting_for_keyframe:
                self.request_keyframe()
        return track

    def unsubscribe(self, track: ForwardTrack) -> None:
        self._subscribers.discard(track)
        track.stop()

    def add_listener(self, listener: Callable[[av.Packet, bool], None]) -> None:
        """Also hand every frame to `listener(packet, keyframe)` (e.g. a recorder)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[av.Packet, bool], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # -- keyframes -----------------------------------------------------------

    def request_keyframe(self) -> None:
        """A subscriber needs a keyframe. Requests reach the publisher at most once
        per interval."""
        if self.kind == "video":
            self._requester.request()

    @property
    def keyframe_requests(self) -> tuple[int, int]:
        """(requests received from subscribers, requests sent to the publisher)."""
        return self._requester.requested, self._requester.sent

    def _ask_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream()

    def close(self) -> None:
        self._requester.close()
        for track in list(self._subscribers):
            self.unsubscribe(track)
        self._listeners.clear()
        self._upstream = None
        self._gop = []
