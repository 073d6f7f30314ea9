"""Which source one subscriber's down track is fed from, switched at a keyframe.

A `LayerSelector` feeds one down track from one of several sources: the layers of a
ladder, or, when it is re-targeted, the layers of another publisher's ladder (the
classroom on stage changes). A switch subscribes to the target and asks it for a
keyframe; the old source keeps flowing until that keyframe arrives, so a switch
costs at most one keyframe's wait and no freeze beyond it. Pausing stops the track
at once; resuming waits for a keyframe. Audio switches at once (every frame stands
alone).

The subscriber must see one continuous timeline. Layers of one ladder share their
top's timeline, so a layer switch keeps timestamps as they are, except that a lower
layer's frame leaves its encoder a little after the top's frame with the same pts:
a frame that would go back in time is re-stamped just after the last one. Sources
of different publishers have unrelated timelines: switching to one rebases it to
continue where the subscriber's timeline stopped.
"""

from collections.abc import Callable, Sequence

import av

from media.source import Source
from media.track import ForwardTrack

TICKS_PER_FRAME = {"video": 3000, "audio": 960}  # 1/30 s at 90 kHz; 20 ms at 48 kHz


class LayerSelector:
    def __init__(
        self,
        layers: Sequence[Source],
        queue_frames: int = 30,
        on_switch: Callable[[int | None, int | None], None] | None = None,
        kind: str = "video",
        track: ForwardTrack | None = None,
    ) -> None:
        """`track` is what frames are put into (a `FastSender`); by default a
        `ForwardTrack` for aiortc's own sender."""
        self.kind = kind
        self.layers = list(layers)
        self.track = track or ForwardTrack(kind, queue_frames, self.request_keyframe)
        if track is not None:
            track._on_keyframe_needed = self.request_keyframe
        self.current: int | None = None
        self.pending: int | None = None
        self.switches = 0
        self._on_switch = on_switch
        self._last_pts: int | None = None
        self._offset = 0
        self._timeline: object | None = None  # the timeline `_offset` applies to
        self._holding = False  # a switch down is waiting: the current layer is held
        self._tick = TICKS_PER_FRAME[kind]

    @property
    def target(self) -> int | None:
        """The layer this subscriber is on, or is switching to."""
        return self.pending if self.pending is not None else self.current

    def set_layers(self, layers: Sequence[Source], index: int | None) -> None:
        """Follow another set of sources (another publisher's ladder), starting on
        `index` of it, or paused with None."""
        self._holding = False
        self._leave(self.pending)
        self._leave(self.current)
        previous = self.current
        self.layers = list(layers)
        self.pending = self.current = None
        if previous is not None:
            self.track.restart()  # nothing from the old publisher after this
        self.select(index)

    def select(self, index: int | None) -> None:
        """Move to layer `index` (0 is the top), or pause with None."""
        if index is None:
            self._holding = False
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
            if self._holding:  # a switch down was called off: its frames were held back
                self._holding = False
                self.track.restart()
                self.layers[index].request_keyframe(switching=True)
            return
        if index == self.pending:
            return
        self._leave(self.pending)
        self.pending = index
        # Going down within one ladder, stop forwarding the layer above at once: the
        # lower layer's first keyframe must be a newer picture than the last one sent.
        self._holding = self.current is not None and index > self.current
        layer = self.layers[index]
        fresh = self.current is None and self._last_pts is None
        # A track that has sent nothing yet may start from the layer's cached keyframe.
        if not layer.add_sink(self, self._on_pending, replay=fresh) and self.kind == "video":
            layer.request_keyframe(switching=True)

    def request_keyframe(self) -> None:
        """The subscriber lost a picture: ask the layer it is on (or going to)."""
        index = self.target
        if index is not None:
            self.layers[index].request_keyframe()

    def _on_pending(self, packet: av.Packet, keyframe: bool) -> None:
        if not keyframe or self.pending is None:
            return
        source = self.layers[self.pending]
        last = self._last_pts
        if (
            source.timeline is self._timeline
            and last is not None
            and (packet.pts or 0) + self._offset <= last
        ):
            # A lower layer's encoder runs a little behind the layer above, so its
            # keyframe can be a picture this subscriber was already sent: showing it
            # again would step back in time. Ask for the next one.
            source.request_keyframe(switching=True)
            return
        self._holding = False
        previous = self.current
        self._leave(previous)
        if previous is not None:
            self.track.new_layer()
        self.current, self.pending = self.pending, None
        source.add_sink(self, self._on_current)
        if source.timeline is not self._timeline:
            self._timeline = source.timeline
            if last is not None and packet.pts is not None:
                self._offset = last + self._tick - packet.pts
        self._deliver(packet, True)
        self._switched(previous, self.current)

    def _on_current(self, packet: av.Packet, keyframe: bool) -> None:
        if not self._holding:
            self._deliver(packet, keyframe)

    def _deliver(self, packet: av.Packet, keyframe: bool) -> None:
        pts = (packet.pts or 0) + self._offset
        last = self._last_pts
        if last is not None and pts <= last:
            pts = last + max(1, self._tick // 3)
        self._last_pts = pts
        # the pts goes alongside, not in a copy: the fast path then packetizes the
        # frame once for all its subscribers, whatever their timelines
        self.track.put(packet, keyframe, pts)

    def _leave(self, index: int | None) -> None:
        if index is not None and index < len(self.layers):
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
