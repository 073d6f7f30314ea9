"""One source forwarded to one subscriber's RTCRtpSender."""

from aiortc import RTCRtpSender

from media import adapter
from media.fastsender import FastSender
from media.selector import LayerSelector
from media.source import Source
from media.track import ForwardTrack


class Subscription:
    def __init__(self, source: Source, fast: bool = False) -> None:
        """With `fast`, frames go out through a `FastSender` instead of aiortc's
        sender path."""
        self.source = source
        if fast:
            self.track: ForwardTrack = FastSender(
                source.kind, source.codec, source.request_keyframe
            )
            if not source.add_sink(self.track, self.track.put, replay=True):
                source.request_keyframe()
        else:
            self.track = source.subscribe()
        self.sender: RTCRtpSender | None = None
        self.feedback: adapter.SenderFeedback | None = None
        self.keyframe_requests = 0

    def bind(self, sender: RTCRtpSender) -> None:
        """Hook the sender that carries `track`: its PLI/FIR go to the source, and its
        RTCP feedback is recorded."""
        self.sender = sender
        if isinstance(self.track, FastSender):
            self.track.bind(sender)
        adapter.on_keyframe_request(sender, self._on_keyframe_request)
        self.feedback = adapter.tap_rtcp(sender)
        if isinstance(self.track, FastSender):
            self.feedback.retransmittable = self.track.retransmittable

    def _on_keyframe_request(self) -> None:
        self.keyframe_requests += 1
        self.source.request_keyframe()

    def counters(self) -> tuple[int, int]:
        """(packets, bytes) sent to this subscriber so far."""
        if self.sender is None:
            return 0, 0
        return adapter.sender_counters(self.sender)

    def close(self) -> None:
        self.source.unsubscribe(self.track)


class AudioFollower:
    """Audio from whichever source is current (the classroom on stage), or silence.
    Timestamps continue across changes of source."""

    def __init__(self, source: Source | None, queue_frames: int = 50, fast: bool = False) -> None:
        self.source = source
        track = FastSender("audio", "opus") if fast else None
        self.selector = LayerSelector(
            [source] if source else [], queue_frames, kind="audio", track=track
        )
        if source is not None:
            self.selector.select(0)
        self.sender: RTCRtpSender | None = None

    @property
    def track(self) -> ForwardTrack:
        return self.selector.track

    def bind(self, sender: RTCRtpSender) -> None:
        self.sender = sender
        if isinstance(self.selector.track, FastSender):
            self.selector.track.bind(sender)

    def retarget(self, source: Source | None) -> None:
        if source is self.source:
            return
        self.source = source
        self.selector.set_layers([source] if source else [], 0 if source else None)

    def counters(self) -> tuple[int, int]:
        if self.sender is None:
            return 0, 0
        return adapter.sender_counters(self.sender)

    def close(self) -> None:
        self.selector.close()
