"""The media connection of `zhuandi classroom`: receive the teacher (and record, or
decode), publish a file, or both (a classroom's uplink). One MediaConnection per
RTCPeerConnection; counters outlive reconnections.

Recording takes the encoded frames from the receivers (media/adapter.py) straight
into the PacketWriter, as sent: nothing is decoded. Without a recording the tracks
are decoded and read, as a classroom's screen would, so that nothing piles up.
"""

import asyncio
import contextlib
from dataclasses import dataclass

import av
from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from media import adapter
from media.background import spawn
from media.bitstream import VP8, vp8_size
from media.peer import create_peer_connection, prefer_codec
from media.receiver import ResilientReceiver
from recorder.writer import PacketWriter
from server.client_player import LoopingPlayer


@dataclass
class MediaCounters:
    """What arrived (or was sent) since the client started, across connections."""

    video_frames: int = 0
    audio_frames: int = 0
    octets: int = 0  # media payload bytes
    size: tuple[int, int] | None = None


def peer_connection(ice_servers: list[dict[str, object]]) -> RTCPeerConnection:
    """A connection using the STUN/TURN servers that `joined` lists for browsers."""
    servers = []
    for entry in ice_servers:
        urls = entry.get("urls")
        if isinstance(urls, str | list):
            username, credential = entry.get("username"), entry.get("credential")
            servers.append(
                RTCIceServer(
                    urls=urls,
                    username=username if isinstance(username, str) else None,
                    credential=credential if isinstance(credential, str) else None,
                )
            )
    return create_peer_connection(servers)


class ReceiveMedia:
    """A recvonly audio+video connection."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        codec: str,
        counters: MediaCounters,
        writer: PacketWriter | None,
    ) -> None:
        self.pc = pc
        self._codec = codec.lower()
        self._counters = counters
        self._writer = writer
        self._tasks: list[asyncio.Task[None]] = []
        self._video_receiver: RTCRtpReceiver | None = None
        self._video_rtp: adapter.RtpTap | None = None
        self._resilient: list[ResilientReceiver] = []
        audio = pc.addTransceiver("audio", direction="recvonly")
        video = pc.addTransceiver("video", direction="recvonly")
        prefer_codec(video, codec)
        self._transceivers = [audio, video]
        self.layout = ["receive:teacher-audio", "receive:teacher-camera"]  # offer.media

    def start(self) -> None:
        """Wire the receivers. Call right after setRemoteDescription, before the
        receivers start (no await in between)."""
        for transceiver in self._transceivers:
            receiver = transceiver.receiver
            track = receiver.track
            if track is None:
                continue
            # aiortc's own receive path stalls for seconds when a packet is lost twice
            # (research file §3.3): a rural classroom needs the resilient one.
            self._resilient.append(ResilientReceiver(receiver, transceiver.kind))
            if transceiver.kind == "video":
                self._video_receiver = receiver
                if self._writer is not None:
                    adapter.tap_frames(receiver, self._on_video_frame)
                else:
                    adapter.tap_frames(receiver, self._on_video_bytes, decode=True)
                    self._tasks.append(asyncio.ensure_future(self._read_video(track)))
                self._video_rtp = adapter.RtpTap(receiver, None)
            elif self._writer is not None:
                adapter.tap_frames(receiver, None)  # no audio decoding
                adapter.RtpTap(receiver, self._on_audio_packet)
            else:
                adapter.RtpTap(receiver, self._on_audio_bytes)
                self._tasks.append(asyncio.ensure_future(self._read_audio(track)))

    def _on_video_frame(self, data: bytes, timestamp: int) -> None:
        counters = self._counters
        counters.video_frames += 1
        counters.octets += len(data)
        if self._codec == VP8:
            counters.size = vp8_size(data) or counters.size
        assert self._writer is not None
        self._writer.write_video(data, timestamp)

    def _on_audio_packet(self, packet: RtpPacket) -> None:
        self._counters.audio_frames += 1
        self._counters.octets += len(packet.payload)
        assert self._writer is not None
        self._writer.write_audio(packet.payload, packet.timestamp)

    def _on_video_bytes(self, data: bytes, timestamp: int) -> None:
        self._counters.octets += len(data)

    def _on_audio_bytes(self, packet: RtpPacket) -> None:
        self._counters.octets += len(packet.payload)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self._counters.video_frames += 1
                    self._counters.size = (frame.width, frame.height)

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self._counters.audio_frames += 1

    def request_keyframe(self) -> None:
        receiver, rtp = self._video_receiver, self._video_rtp
        if receiver is not None and rtp is not None and rtp.media_ssrc is not None:
            spawn(adapter.send_pli(receiver, rtp.media_ssrc), "PLI to the server")

    async def close(self) -> None:
        for resilient in self._resilient:
            resilient.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class PublishMedia:
    """Plays a file, again and again, on sendonly transceivers: a teacher's microphone
    and camera, or a classroom's."""

    def __init__(
        self, pc: RTCPeerConnection, codec: str, counters: MediaCounters, path: str
    ) -> None:
        self._counters = counters
        self.player = LoopingPlayer(path)
        self._senders: list[RTCRtpSender] = []
        self._seen = (0, 0, 0)  # video frames, audio frames, octets already counted
        self.layout: list[str] = []  # offer.media
        for track in (self.player.audio, self.player.video):
            if track is not None:
                transceiver = pc.addTransceiver(track, direction="sendonly")
                if track.kind == "video":
                    prefer_codec(transceiver, codec)
                self._senders.append(transceiver.sender)
                self.layout.append("send:microphone" if track.kind == "audio" else "send:camera")

    def sync(self) -> None:
        video = self.player.video.frames if self.player.video else 0
        audio = self.player.audio.frames if self.player.audio else 0
        octets = sum(adapter.sender_counters(sender)[1] for sender in self._senders)
        seen_video, seen_audio, seen_octets = self._seen
        self._counters.video_frames += video - seen_video
        self._counters.audio_frames += audio - seen_audio
        self._counters.octets += octets - seen_octets
        self._seen = (video, audio, octets)
        if self.player.video is not None and self.player.video.size is not None:
            self._counters.size = self.player.video.size


class MediaConnection:
    """One RTCPeerConnection and what flows on it: the teacher received, a file
    published, or both. Keyframe requests from the server reach aiortc's encoder
    by themselves; ours go to the server for the received video."""

    def __init__(
        self,
        ice_servers: list[dict[str, object]],
        codec: str,
        *,
        receive: tuple[MediaCounters, PacketWriter | None] | None,
        publish: tuple[MediaCounters, str] | None,
    ) -> None:
        self.pc = peer_connection(ice_servers)
        self.receiving: ReceiveMedia | None = None
        self.publishing: PublishMedia | None = None
        try:
            if receive is not None:
                self.receiving = ReceiveMedia(self.pc, codec, *receive)
            if publish is not None:
                self.publishing = PublishMedia(self.pc, codec, *publish)
        except BaseException:
            spawn(self.pc.close(), "closing an unused connection")
            raise

    @property
    def layout(self) -> list[str]:
        """`offer.media`: what each m-line is, in order (docs/protocol.md)."""
        parts = (self.receiving, self.publishing)
        return [entry for part in parts if part is not None for entry in part.layout]

    def start(self) -> None:
        """Right after setRemoteDescription, with no await in between."""
        if self.receiving is not None:
            self.receiving.start()

    def sync(self) -> None:
        if self.publishing is not None:
            self.publishing.sync()

    def request_keyframe(self) -> None:
        if self.receiving is not None:
            self.receiving.request_keyframe()

    async def close(self) -> None:
        self.sync()
        if self.receiving is not None:
            await self.receiving.close()
        await asyncio.shield(self.pc.close())
        if self.publishing is not None:
            self.publishing.player.stop()
