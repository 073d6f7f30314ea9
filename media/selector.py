"""Which layer one subscriber receives, switched only at a keyframe of the target.

A `LayerSelector` feeds one down track from one layer at a time. A switch subscribes
to the target layer and asks it for a keyframe; the old layer keeps flowing until
that keyframe arrives, so a switch costs at most one keyframe's wait and no freeze
beyond it. Pausing (audio only) stops video at once; resuming waits for a keyframe.

Layers share one timeline, but a lower layer's frame leaves its encoder a little
after the top's frame with the same pts. Timestamps a subscriber sees must never go
back, so a frame that would is re-stamped just after the last one delivered.
"""

from collections.abc import Callable, Sequence

import av

from media.source import Source
from media.track import ForwardTrack

TICKS_PER_FRAME = 3000  # 1/30 s at 90 kHz


class LayerSelector:
    def __init__(
        self,
        layers: Sequence[Source],
        queue_frames: int = 30,
        on_switch: Callable[[int | None, int | None], None] | None = None,
    ) -> None:
        self.layers = list(layers)
        self.track = ForwardTrack("video", queue_frames, self.request_keyframe)
        self.current: int | None = None
        self.pending: int | None = None
        self.switches = 0
        self._on_switch = on_switch
        self._last_pts: int | None = None

    @property
    def target(self) -> int | None:
        """The layer this subscriber is on, or is switching to."""
        return self.pending if self.pending is not None else self.current

    def select(self, index: int | None) -> None:
        """Move to layer `index` (0 is the top), or pause video with None."""
        if index is None:
            self._leave(self.pending)
            self._leave(self.current)
            self.pending = None
            if self.current is not None:
                previous, self.current = self.current, None
                self.track.restart()
                self._switched(previous, None)
            return
        if index == self.current:
            self._leave(self.pending)
            self.pending = None
            return
        if index == self.pending:
            return
        self._leave(self.pending)
        self.pending = index
        layer = self.layers[index]
        fresh = self.current is None and self._last_pts is None
        # A track that has sent nothing yet may start from the layer's cached keyframe.
        if not layer.add_sink(self, self._on_pending, replay=fresh):
            layer.request_keyframe()

    def request_keyframe(self) -> None:
        """The subscriber lost a picture: ask the layer it is on (or going to)."""
        index = self.target
        if index is not None:
            self.layers[index].request_keyframe()

    def _on_pending(self, packet: av.Packet, keyframe: bool) -> None:
        if not keyframe or self.pending is None:
            return
        previous = self.current
        self._leave(previous)
        self.current, self.pending = self.pending, None
        self.layers[self.current].add_sink(self, self._on_current)
        self._deliver(packet, True)
        self._switched(previous, self.current)

    def _on_current(self, packet: av.Packet, keyframe: bool) -> None:
        self._deliver(packet, keyframe)

    def _deliver(self, packet: av.Packet, keyframe: bool) -> None:
        last = self._last_pts
        if last is not None and packet.pts is not None and packet.pts <= last:
            restamped = av.Packet(bytes(packet))
            restamped.pts = restamped.dts = last + TICKS_PER_FRAME // 3
            restamped.time_base = packet.time_base
            packet = restamped
        self._last_pts = packet.pts
        self.track.put(packet, keyframe)

    def _leave(self, index: int | None) -> None:
        if index is not None:
            self.layers[index].remove_sink(self)

    def _switched(self, previous: int | None, current: int | None) -> None:
        self.switches += 1
        if self._on_switch is not None:
            self._on_switch(previous, current)

    def close(self) -> None:
        self._leave(self.pending)
        self._leave(self.current)
        self.pending = self.current = None
        self.track.stop()
