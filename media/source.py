"""A source: one stream of encoded frames fanned out to its sinks.

A publisher's up track is a source; so is each lower rendition the ladder encodes.
A sink is any callable taking (packet, keyframe): a subscriber's down track, a layer
selector in the middle of a switch, a recorder, the ladder's decoder.

A source outlives its publisher's connection: when the publisher reconnects, the new
connection attaches to the same source and every subscriber carries on, with
continuous timestamps, from the next keyframe.
"""

import logging
import time
from collections.abc import Callable, Hashable

import av

from media.bitstream import VP8, is_keyframe, vp8_size
from media.delay import FORWARD_DELAY
from media.keyframe import KeyframeRequester
from media.rate import RateMeter
from media.timeline import Timeline
from media.track import ForwardTrack, time_base

logger = logging.getLogger(__name__)

Sink = Callable[[av.Packet, bool], None]
# A joining subscriber is sent the cached keyframe and what followed it at once: no
# more than this, or the burst floods a slow line's shaper (a fresh keyframe is asked
# for instead).
REPLAY_BYTES = 96 * 1024


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
        self.time_base = time_base(clock_rate)
        self._clock = clock
        self._timeline = Timeline(clock_rate, clock)
        # Which timeline this source's pts are on; a ladder's layers share their top's.
        self.timeline: object = self._timeline
        self._queue_frames = queue_frames
        self._cache_seconds = keyframe_cache_seconds
        self._sinks: dict[Hashable, Sink] = {}
        self._upstream: Callable[[], None] | None = None
        self._requester = KeyframeRequester(self._ask_upstream, keyframe_min_interval, clock)
        # The last keyframe and the frames after it, for sinks that join.
        self._gop: list[av.Packet] = []
        self._gop_time = 0.0
        self.rate = RateMeter(clock=clock)
        self.frames = 0
        self.keyframes = 0
        self.size: tuple[int, int] | None = None
        self.last_frame_time: float | None = None
        self.generation = 0  # counts publisher connections
        self.cheap_keyframes = False  # a ladder layer: asking its encoder costs little
        self.audio_level = -127.0  # dBov, from the publisher's audio-level header extension
        self._loudest_level = -127.0  # the highest audio_level since peak_audio_level()

    def hear_level(self, dbov: float) -> None:
        """One packet's audio level (from the publisher's header extension), smoothed."""
        self.audio_level = 0.8 * self.audio_level + 0.2 * dbov
        self._loudest_level = max(self._loudest_level, self.audio_level)

    def peak_audio_level(self) -> float:
        """The loudest smoothed level since the last call: a reader that polls still
        hears a short word that ended between two polls."""
        peak, self._loudest_level = self._loudest_level, self.audio_level
        return peak

    # -- the publishing side -------------------------------------------------

    @property
    def live(self) -> bool:
        return self._upstream is not None

    def attach(self, request_keyframe: Callable[[], None]) -> None:
        """A publisher (a connection, or a ladder encoder) now feeds this source;
        `request_keyframe` asks it for a keyframe."""
        self._upstream = request_keyframe
        self.generation += 1
        self._timeline.restart()
        self._gop = []
        for owner in self._sinks:
            if isinstance(owner, ForwardTrack):
                owner.restart()
        if self.kind == "video":
            self.request_keyframe()

    def detach(self, request_keyframe: Callable[[], None] | None = None) -> None:
        """The publisher left. With `request_keyframe`, only if it is still the one
        attached (a newer connection may have taken over)."""
        if request_keyframe is not None and self._upstream != request_keyframe:
            return
        self._upstream = None
        self._gop = []

    def push(self, data: bytes, timestamp: int, arrived: float | None = None) -> None:
        """One encoded frame from the publisher, with its RTP-clock timestamp and
        when its first packet arrived (`time.perf_counter()`), if known."""
        keyframe = self.kind != "video" or is_keyframe(self.codec, data)
        packet = av.Packet(data)
        packet.pts = self._timeline.map(timestamp)
        packet.dts = packet.pts
        packet.time_base = self.time_base
        self.push_packet(packet, keyframe)
        if arrived is not None and self._sinks:
            FORWARD_DELAY.record(time.perf_counter() - arrived)

    def push_packet(self, packet: av.Packet, keyframe: bool) -> None:
        """One encoded frame whose pts is already on the lesson's timeline (event loop)."""
        now = self._clock()
        self.frames += 1
        self.rate.add(packet.size, now)
        self.last_frame_time = now
        if self.kind == "video":
            if keyframe:
                self.keyframes += 1
                self._requester.keyframe_arrived()
                self._gop = [packet]
                self._gop_time = now
                if self.codec == VP8:
                    self.size = vp8_size(bytes(packet)) or self.size
            elif self._gop and len(self._gop) < self._queue_frames:
                self._gop.append(packet)
            else:
                self._gop = []
        for sink in list(self._sinks.values()):
            sink(packet, keyframe)

    # -- the subscribing side ------------------------------------------------

    def add_sink(self, owner: Hashable, sink: Sink, *, replay: bool = False) -> bool:
        """Hand every frame to `sink` from now on. With `replay`, first replay the
        cached keyframe and what followed it, if that keyframe is recent; returns
        whether it did."""
        self._sinks[owner] = sink
        if (
            replay
            and self.kind == "video"
            and self._gop
            and self._clock() - self._gop_time <= self._cache_seconds
            and sum(p.size for p in self._gop) <= REPLAY_BYTES
        ):
            for i, packet in enumerate(self._gop):
                # looked up each time: a sink may replace itself while replaying
                current = self._sinks.get(owner)
                if current is None:
                    break
                current(packet, i == 0)
            return True
        return False

    def remove_sink(self, owner: Hashable) -> None:
        self._sinks.pop(owner, None)

    @property
    def sink_count(self) -> int:
        return len(self._sinks)

    def has_sink(self, owner: Hashable) -> bool:
        return owner in self._sinks

    def subscribe(self) -> ForwardTrack:
        """A new down track on this source alone. Video starts from the cached
        keyframe when it is recent, otherwise from the next one, which is requested."""
        track = ForwardTrack(self.kind, self._queue_frames, self.request_keyframe)
        if not self.add_sink(track, track.put, replay=True) and self.kind == "video":
            self.request_keyframe()
        return track

    def unsubscribe(self, track: ForwardTrack) -> None:
        self.remove_sink(track)
        track.stop()

    # -- keyframes -----------------------------------------------------------

    def request_keyframe(self, switching: bool = False) -> None:
        """A sink needs a keyframe. Requests reach the publisher at most once per
        interval. A layer switch (`switching`) on a source whose keyframes are cheap (a
        ladder layer: a flag for its encoder, unlike a PLI to a browser) is served at
        once, so that the switch is not held up by the throttle."""
        if self.kind != "video":
            return
        if switching and self.cheap_keyframes and self._upstream is not None:
            self._requester.requested += 1
            self._upstream()
            return
        self._requester.request()

    @property
    def keyframe_requests(self) -> tuple[int, int]:
        """(requests received from sinks, requests sent to the publisher)."""
        return self._requester.requested, self._requester.sent

    def _ask_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream()

    def close(self) -> None:
        self._requester.close()
        for owner in list(self._sinks):
            if isinstance(owner, ForwardTrack):
                owner.stop()
        self._sinks.clear()
        self._upstream = None
        self._gop = []
