"""Wires a publisher's RTCRtpReceiver into a Source, without decoding.

Video: reassembled frames are taken from the receiver's decoder queue, so aiortc's
jitter buffer, NACK, RR and REMB keep working. Audio: Opus payloads are taken before
aiortc's audio jitter buffer, which adds 80 ms and more after a loss.
"""

import logging

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from media import adapter
from media.background import spawn
from media.source import Source

logger = logging.getLogger(__name__)


class Upstream:
    """One publisher receiver feeding one source, until `close()`."""

    def __init__(self, receiver: RTCRtpReceiver, source: Source) -> None:
        self.receiver = receiver
        self.source = source
        self.pli_sent = 0
        if source.kind == "video":
            adapter.tap_frames(receiver, self._on_frame)
            self._rtp = adapter.RtpTap(receiver, None)
        else:
            adapter.tap_frames(receiver, None)
            self._rtp = adapter.RtpTap(receiver, self._on_audio_packet)
        source.attach(self.request_keyframe)

    def _on_audio_packet(self, packet: RtpPacket) -> None:
        level = packet.extensions.audio_level
        if level is not None:
            self.source.hear_level(-level[1])
        arrived = self._rtp.arrivals.pop(packet.timestamp, None)
        self.source.push(packet.payload, packet.timestamp, arrived)

    def _on_frame(self, data: bytes, timestamp: int) -> None:
        self.source.push(data, timestamp, self._rtp.arrivals.pop(timestamp, None))

    @property
    def packets(self) -> int:
        return self._rtp.packets

    @property
    def media_ssrc(self) -> int | None:
        return self._rtp.media_ssrc

    def request_keyframe(self) -> None:
        ssrc = self._rtp.media_ssrc
        if ssrc is None:
            return  # nothing received yet: the first frames will include a keyframe
        self.pli_sent += 1
        spawn(adapter.send_pli(self.receiver, ssrc), "PLI to publisher")

    def close(self) -> None:
        self.source.detach(self.request_keyframe)
