"""Classrooms: several aiortc subscribers in one process. Run by bench.fanout:

    python -m bench.receivers URL TOKEN [TOKEN ...] [--decode K]

Most receivers are light: they count the RTP packets that arrive by their
headers, which SRTP leaves in the clear, and check the sequence numbers of each
stream for packets missing, so that the clients cost the shared CPU little
(aiortc's receive path, its decryption and jitter buffer, cost a 2-core machine
more than the server past 64 classrooms). aiortc still sends their receiver
reports. The first K decode the video and read the number each frame carries
(tests/frames.py), which shows that the frames that arrive are the teacher's,
whole and in order.
"""

import argparse
import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpTransceiver, rtcrtpreceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtpPacket

from bench.control import commands, emit, stdin_reader
from bench.signalling import Signalling
from media import adapter
from media.peer import create_peer_connection, prefer_codec
from tests.frames import read_number

CONNECT_CONCURRENCY = 4
SRTP_TAG = 10  # AES_CM_128_HMAC_SHA1_80
CLIP_FRAMES = 300  # the clip's frame numbers run 1..CLIP_FRAMES, then start again


def silence_remb() -> None:
    """Make this process's aiortc receivers send no REMB.

    aiortc's delay-based estimate reads the scheduling jitter of a busy 2-core
    machine as congestion: it settles near 0.8x of a 1.5 Mbps stream, and our
    server then moves the classroom down to an encoded 360p layer. Without REMB
    (only loss moves it) every classroom stays on the forwarded top layer, which is
    what this bench measures. `--remb` keeps it.
    """
    rtcrtpreceiver.RemoteBitrateEstimator.add = lambda *args, **kwargs: None  # type: ignore[method-assign]


class _Seen:
    """What aiortc's stream statistics read of a packet."""

    __slots__ = ("sequence_number", "timestamp")

    def __init__(self) -> None:
        self.sequence_number = 0
        self.timestamp = 0


def _rtp_first(
    received: Callable[[bytes, Any], None], count: Callable[[bytes], None]
) -> Callable[[bytes, Any], None]:
    """A socket's datagrams: RTP to `count`, the rest (STUN, DTLS, RTCP) as before."""

    def datagram_received(data: bytes, address: Any) -> None:
        if len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
            count(data)
        else:
            received(data, address)

    return datagram_received


class Receiver:
    """One classroom's connection, counting what arrives."""

    def __init__(self, url: str, token: str, decode: bool) -> None:
        self.signalling = Signalling(url)
        self.token = token
        self.decode = decode
        self.pc: RTCPeerConnection = create_peer_connection()
        self.frames = 0
        self.video_bytes = 0
        self.decoded = 0
        self.damaged = 0
        self.gaps = 0
        self.last_number: int | None = None
        self.receiving = asyncio.Event()
        self.taps: list[adapter.RtpTap] = []
        self._tasks: list[asyncio.Task[None]] = []

        # counting receivers: per stream (SSRC), the next sequence number expected
        self._counted = 0
        self._expected: dict[int, int] = {}
        self.missing = 0

    @property
    def packets(self) -> int:
        return self._counted + sum(tap.packets for tap in self.taps)

    async def connect(self) -> None:
        for kind in ("audio", "video"):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            if kind == "video":
                prefer_codec(transceiver, "VP8")
            if self.decode:
                self._tap(transceiver)
        await self.signalling.join(self.token, "classroom")
        await self.signalling.negotiate(self.pc)
        if not self.decode:
            self._count_packets()  # before DTLS is up: no packet is missed

    def _count_packets(self) -> None:
        """Count this connection's RTP by the clear headers, instead of aiortc's
        receive path (the bench's own hook: a light receiver checks what arrives,
        it does not play it). aiortc's receivers still get each packet's sequence
        number and timestamp for their statistics, so that their receiver reports
        (loss, jitter; the server gives up a classroom that sends none) stay true."""
        transceivers = {t.kind: t for t in self.pc.getTransceivers()}
        video, audio = transceivers["video"].receiver, transceivers["audio"].receiver
        video_types = set(adapter.receiver_codecs(video))
        transport = video.transport
        expected = self._expected
        fields = struct.Struct("!HII")
        streams: dict[int, Any] = {}
        seen = _Seen()

        def stream(ssrc: int, is_video: bool) -> Any:
            receiver = video if is_video else audio
            made = streams[ssrc] = StreamStatistics(90000 if is_video else 48000)
            receiver._RTCRtpReceiver__remote_streams[ssrc] = made  # type: ignore[attr-defined]
            return made

        def count(data: bytes) -> None:
            self._counted += 1
            sequence, timestamp, ssrc = fields.unpack_from(data, 2)
            want = expected.get(ssrc)
            if want is not None and sequence != want:
                ahead = (sequence - want) & 0xFFFF
                if ahead < 0x8000:
                    self.missing += ahead
            if want is None or (sequence - want) & 0xFFFF < 0x8000:
                expected[ssrc] = (sequence + 1) & 0xFFFF
            is_video = data[1] & 0x7F in video_types
            seen.sequence_number, seen.timestamp = sequence, timestamp
            (streams.get(ssrc) or stream(ssrc, is_video)).add(seen)
            if is_video:
                size = 12 + 4 * (data[0] & 0x0F)
                if data[0] & 0x10 and len(data) >= size + 4:
                    size += 4 + 4 * int.from_bytes(data[size + 2 : size + 4], "big")
                self.video_bytes += len(data) - size - SRTP_TAG
                if data[1] & 0x80:  # the marker: a frame's last packet
                    self.frames += 1
                    self.receiving.set()

        # straight from the sockets: aioice's queue and the DTLS transport's
        # coroutine cost a receiver more than the rest of its packet
        for protocol in transport.transport._connection._protocols:
            protocol.datagram_received = _rtp_first(protocol.datagram_received, count)  # type: ignore[method-assign, assignment]

    def _tap(self, transceiver: RTCRtpTransceiver) -> None:
        """A decoding receiver: aiortc's whole receive path, and the frames read."""
        receiver = transceiver.receiver
        video = transceiver.kind == "video"
        self.taps.append(adapter.RtpTap(receiver, self._on_video_packet if video else None))
        if not video:
            adapter.tap_frames(receiver, None)  # no Opus decoding
        else:
            # aiortc makes the track when the answer arrives
            @self.pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video":
                    self._tasks.append(asyncio.ensure_future(self._read_video(track)))

    def _on_video_packet(self, packet: RtpPacket) -> None:
        self.video_bytes += len(packet.payload)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                self.frames += 1
                self.receiving.set()
                number = read_number(frame)
                if number is None:
                    self.damaged += 1
                    continue
                self.decoded += 1
                last = self.last_number
                if last is not None and number != last % CLIP_FRAMES + 1:
                    self.gaps += 1
                self.last_number = number

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.shield(self.pc.close())
        await self.signalling.close()


def totals(receivers: list[Receiver]) -> dict[str, Any]:
    return {
        "t": time.monotonic(),
        "receivers": len(receivers),
        "connected": sum(1 for r in receivers if r.pc.connectionState == "connected"),
        "packets": sum(r.packets for r in receivers),
        "frames": sum(r.frames for r in receivers),
        "video_bytes": sum(r.video_bytes for r in receivers),
        "decoding": sum(1 for r in receivers if r.decode),
        "decoded": sum(r.decoded for r in receivers),
        "damaged": sum(r.damaged for r in receivers),
        "gaps": sum(r.gaps for r in receivers),
        "missing": sum(r.missing for r in receivers),
    }


async def run(url: str, tokens: list[str], decode: int, timeout: float, remb: bool) -> None:
    adapter.set_host_addresses(["127.0.0.1"])
    if not remb:
        silence_remb()
    receivers = [Receiver(url, token, i < decode) for i, token in enumerate(tokens)]
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(receiver: Receiver) -> str | None:
        async with limit:
            try:
                await receiver.connect()
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
        return None

    try:
        errors = [e for e in await asyncio.gather(*(connect(r) for r in receivers)) if e]
        with contextlib.suppress(TimeoutError):
            waits = (r.receiving.wait() for r in receivers)
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        waiting = sum(1 for r in receivers if r.frames == 0)
        emit("ready", errors=errors, without_frames=waiting, **totals(receivers))
        async for command in commands(await stdin_reader()):
            if command == "stats":
                emit("stats", **totals(receivers))
    finally:
        await asyncio.gather(*(r.close() for r in receivers), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("tokens", nargs="+")
    parser.add_argument("--decode", type=int, default=0, help="how many receivers decode")
    parser.add_argument("--timeout", type=float, default=30.0, help="wait for first frames")
    parser.add_argument("--remb", action="store_true", help="send aiortc's REMB estimates")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.url, args.tokens, args.decode, args.timeout, args.remb))


if __name__ == "__main__":
    main()
