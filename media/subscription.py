"""One source forwarded to one subscriber's RTCRtpSender."""

from aiortc import RTCRtpSender

from media import adapter
from media.source import Source
from media.track import ForwardTrack


class Subscription:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.track: ForwardTrack = source.subscribe()
        self.sender: RTCRtpSender | None = None
        self.feedback: adapter.SenderFeedback | None = None
        self.keyframe_requests = 0

    def bind(self, sender: RTCRtpSender) -> None:
        """Hook the sender that carries `track`: its PLI/FIR go to the source, and its
        RTCP feedback is recorded."""
        self.sender = sender
        adapter.on_keyframe_request(sender, self._on_keyframe_request)
        self.feedback = adapter.tap_rtcp(sender)

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
