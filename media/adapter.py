"""Every reach into aiortc's and aioice's private parts, in one place.

aiortc 1.16 has no public API for encoded frames, keyframe requests or per-sender
RTCP, so the SFU hooks a few private attributes. Each hook below has its own test
(tests/test_adapter.py), so that an aiortc upgrade breaks this file and that test,
not the rest of the project. See ../shared/research/aiortc-1.16.md §1.
"""

import logging
import queue
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import aioice.ice
import pylibsrtp
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import CODECS, is_rtx
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)
from pylibsrtp._binding import ffi as srtp_ffi
from pylibsrtp._binding import lib as srtp_lib

from media import gso
from media.background import spawn
from media.retransmitbudget import RetransmitBudget

logger = logging.getLogger(__name__)

FrameSink = Callable[[bytes, int], None]
"""Receives (encoded frame, receiver timestamp) on the event loop."""

_original_get_host_addresses = aioice.ice.get_host_addresses


def set_host_addresses(addresses: Sequence[str]) -> None:
    """Decide which local addresses become ICE host candidates.

    aioice leaves 127.0.0.1 out and offers every interface otherwise. An empty
    list restores that, plus 127.0.0.1 so that a browser on this machine can join.
    """
    fixed = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if fixed:
            return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]
        found = _original_get_host_addresses(use_ipv4, use_ipv6)
        return (["127.0.0.1"] if use_ipv4 else []) + found

    aioice.ice.get_host_addresses = get_host_addresses


def enable_opus_fec() -> None:
    """Advertise Opus in-band FEC, so that Chrome publishers send it.

    aiortc answers with its own codec parameters, which carry no fmtp for Opus.
    """
    for codec in CODECS["audio"]:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters.update({"minptime": 10, "useinbandfec": 1})


class _FrameTap(queue.Queue):
    """Stands in for a receiver's decoder queue and hands frames to a sink.

    The receiver puts each reassembled frame here, on the event loop, after its
    jitter buffer, NACK and PLI logic. `None` stops the idle decoder thread.
    """

    def __init__(self, sink: FrameSink | None, tee: bool) -> None:
        super().__init__()
        self._sink = sink
        self._tee = tee

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None, block, timeout)
            return
        if self._sink is not None:
            _codec, frame = item
            try:
                self._sink(frame.data, frame.timestamp)
            except Exception:
                logger.exception("frame sink failed")
        if self._tee:
            super().put(item, block, timeout)


def tap_frames(receiver: RTCRtpReceiver, sink: FrameSink | None, *, decode: bool = False) -> None:
    """Send the receiver's encoded frames to `sink` instead of its decoder.

    Must run before the receiver starts (right after setRemoteDescription). With
    `decode=True` aiortc also decodes the frames; otherwise its track stays idle.
    A `None` sink just switches decoding off (audio that is tapped as RTP).
    """
    receiver._RTCRtpReceiver__decoder_queue = _FrameTap(sink, decode)  # type: ignore[attr-defined]


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, RTCRtpCodecParameters]:
    """Payload type -> codec, as negotiated (filled when the receiver starts)."""
    codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    return codecs


class RtpTap:
    """Watches a receiver's RTP packets before aiortc handles them.

    It remembers the media SSRC (never the RTX one: Chrome's first packets are often
    RTX padding, and a PLI naming the RTX SSRC is ignored) and can pass every
    media packet's payload to a sink, which is how audio skips aiortc's jitter buffer.
    """

    def __init__(self, receiver: RTCRtpReceiver, sink: Callable[[RtpPacket], None] | None) -> None:
        self.media_ssrc: int | None = None
        self.packets = 0
        # When each recent frame's first packet arrived (perf_counter), by RTP
        # timestamp: the start of the server's added latency (media/delay.py).
        self.arrivals: dict[int, float] = {}
        self._receiver = receiver
        self._sink = sink
        self._media_pts: set[int] = set()
        original = receiver._handle_rtp_packet

        async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            if packet.payload_type not in self._media_pts:
                self._learn_payload_types()
                register_rtx_ssrcs(receiver)
            if packet.payload_type in self._media_pts:
                self.media_ssrc = packet.ssrc
                self.packets += 1
                arrivals = self.arrivals
                if packet.timestamp not in arrivals:
                    if len(arrivals) >= 64:  # frames that never completed
                        arrivals.clear()
                    arrivals[packet.timestamp] = time.perf_counter()
                if self._sink is not None and packet.payload:
                    try:
                        self._sink(packet)
                    except Exception:
                        logger.exception("RTP sink failed")
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle_rtp_packet  # type: ignore[method-assign]

    def _learn_payload_types(self) -> None:
        self._media_pts = {
            pt for pt, codec in receiver_codecs(self._receiver).items() if not is_rtx(codec)
        }


def register_rtx_ssrcs(receiver: RTCRtpReceiver) -> None:
    """Route the receiver's RTX SSRCs to it. aiortc registers only media SSRCs and
    finds RTX by payload type, which fails when two video m-lines share the RTX
    payload type (research file §5.3): retransmissions were dropped."""
    rtx: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    router = receiver.transport._rtp_router
    for rtx_ssrc in rtx:
        router.ssrc_table.setdefault(rtx_ssrc, receiver)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the remote publisher for a keyframe (RTCP PLI naming `media_ssrc`)."""
    await receiver._send_rtcp_pli(media_ssrc)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` when the remote subscriber sends PLI or FIR.

    aiortc's own handler only sets a flag for its encoder, which means nothing
    for forwarded packets.
    """
    sender._send_keyframe = callback  # type: ignore[method-assign]


class SenderFeedback:
    """Per-subscriber RTCP read from a sender: REMB, receiver reports, NACKs."""

    def __init__(self) -> None:
        self.budget = RetransmitBudget()
        # Which packets can still be resent (set by a sender that keeps its own
        # history): a NACK for one long gone must not spend the budget. A receiver
        # keeps asking for packets of a layer it left (aiortc's asks for every gap
        # it ever saw), and they used the tokens that its fresh losses needed.
        self.retransmittable: Callable[[int], bool] | None = None
        self.remb_bps: int | None = None
        self.remb_ssrcs: tuple[int, ...] = ()  # the streams that REMB's figure covers
        self.rtt: float | None = None  # from the last report alone (aiortc smooths its own)
        self.fraction_lost = 0.0
        self.packets_lost = 0
        self.highest_sequence = 0
        self.jitter = 0
        self.nacks = 0
        # packets NACKed, each counted once however often it is asked for again
        self.newly_nacked = 0
        self._asked: dict[int, float] = {}
        self.reports = 0

    def count_nacked(self, lost: list[int], now: float) -> None:
        asked = self._asked
        for seq in lost:
            if seq not in asked:
                asked[seq] = now
                self.newly_nacked += 1
        if len(asked) > 2048:
            self._asked = {s: t for s, t in asked.items() if now - t < 5.0}


def tap_rtcp(
    sender: RTCRtpSender,
    on_report: Callable[[SenderFeedback], None] | None = None,
    on_nack: Callable[[SenderFeedback], None] | None = None,
    on_remb: Callable[[SenderFeedback], None] | None = None,
) -> SenderFeedback:
    """Record REMB, RR and NACK counts that reach `sender`, then let aiortc handle them."""
    feedback = SenderFeedback()
    original = sender._handle_rtcp_packet

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                bitrate, ssrcs = 0, []
            if sender._ssrc in ssrcs:
                feedback.remb_bps = bitrate
                feedback.remb_ssrcs = tuple(ssrcs)
                if on_remb is not None:
                    on_remb(feedback)
        elif isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    feedback.rtt = _rtt_sample(sender, report.lsr, report.dlsr)
                    feedback.fraction_lost = report.fraction_lost / 256
                    feedback.packets_lost = report.packets_lost
                    feedback.highest_sequence = report.highest_sequence
                    feedback.jitter = report.jitter
                    feedback.reports += 1
                    if on_report is not None:
                        on_report(feedback)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            feedback.nacks += len(packet.lost)
            lost = packet.lost
            if feedback.retransmittable is not None:
                lost = [seq for seq in lost if feedback.retransmittable(seq)]
            feedback.count_nacked(lost, time.monotonic())
            if on_nack is not None:
                on_nack(feedback)
            packet.lost = feedback.budget.allow(lost, sender_counters(sender)[0])
        await original(packet)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
    return feedback


def _rtt_sample(sender: RTCRtpSender, lsr: int, dlsr: int) -> float | None:
    """The round trip one receiver report shows (RFC 3550 §6.4.1), unsmoothed."""
    last_sr: int | None = sender._RTCRtpSender__lsr  # type: ignore[attr-defined]
    sent_at: float | None = sender._RTCRtpSender__lsr_time  # type: ignore[attr-defined]
    if not lsr or lsr != last_sr or sent_at is None:
        return None
    return max(0.0, time.time() - sent_at - dlsr / 65536)


def sender_counters(sender: RTCRtpSender) -> tuple[int, int]:
    """(RTP packets, payload bytes) that `sender` has sent so far."""
    packets: int = sender._RTCRtpSender__packet_count  # type: ignore[attr-defined]
    octets: int = sender._RTCRtpSender__octet_count  # type: ignore[attr-defined]
    return packets, octets


def sender_rtt(sender: RTCRtpSender) -> float | None:
    """Smoothed round-trip time from the subscriber's receiver reports, in seconds."""
    rtt: float | None = sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
    return rtt


def replace_jitter_buffer(receiver: RTCRtpReceiver, buffer: Any) -> Callable[[Any], None]:
    """Put `buffer` in place of the receiver's jitter buffer (any object with
    `add(packet) -> (pli, frame)`). Returns a function that hands an extra completed
    frame to the receiver's decoder, as the receiver itself would."""
    receiver._RTCRtpReceiver__jitter_buffer = buffer  # type: ignore[attr-defined]

    def deliver(frame: Any) -> None:
        mapper = receiver._RTCRtpReceiver__timestamp_mapper  # type: ignore[attr-defined]
        codecs = [c for c in receiver_codecs(receiver).values() if not is_rtx(c)]
        if not codecs:
            return
        frame.timestamp = mapper.map(frame.timestamp)
        receiver._RTCRtpReceiver__decoder_queue.put((codecs[0], frame))  # type: ignore[attr-defined]

    return deliver


async def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> None:
    """Ask the sender to retransmit these sequence numbers (RTCP generic NACK)."""
    await receiver._send_rtcp_nack(media_ssrc, lost)


# -- the fast send path (media/fastsender.py) --------------------------------------


def lean_protect(session: pylibsrtp.Session) -> Callable[[bytes], bytes]:
    """`session.protect` without pylibsrtp's allocations and checks a call (about a
    microsecond of a packet's 2.5): the same libsrtp call on the session's own
    buffer, with a length cell allocated once."""
    cdata = session._cdata
    buffer = session._buffer
    srtp = session._srtp[0]
    length = srtp_ffi.new("int *")
    srtp_protect = srtp_lib.srtp_protect
    limit = len(cdata) - pylibsrtp.SRTP_MAX_TRAILER_LEN

    def protect(data: bytes) -> bytes:
        size = len(data)
        if size > limit:
            raise ValueError("packet is too long")
        length[0] = size
        buffer[0:size] = data
        status = srtp_protect(srtp, cdata, length)
        if status:
            raise pylibsrtp.Error(f"libsrtp error {status}")
        protected: bytes = buffer[0 : length[0]]
        return protected

    protect.session = session  # type: ignore[attr-defined]  # keeps the session alive
    return protect


class Route(NamedTuple):
    """A connected sender's way to the wire: SRTP protection, then one datagram
    (`send`) or a frame's (`send_many`), on the nominated ICE pair."""

    pair: Any
    protect: Callable[[bytes], bytes]
    send: Callable[[bytes], None]
    send_many: Callable[[list[bytes]], None]


class SenderWiring:
    """What a forwarding sender needs to send by itself, taken from aiortc's sender
    after negotiation: its SSRCs, payload types and header-extension layout, and
    the connection's SRTP session and UDP path (the nominated ICE pair)."""

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
        self.sender = sender
        self.ssrc = sender._ssrc
        self.rtx_ssrc = sender._rtx_ssrc
        assert codec.payloadType is not None
        self.payload_type: int = codec.payloadType
        self.rtx_payload_type: int | None = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        self.dtls = sender.transport
        extensions = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        self.header, self.abs_send_time_at = _header_template(extensions, mid, self.ssrc)
        self.rtx_header, self.rtx_abs_send_time_at = _header_template(
            extensions, mid, self.rtx_ssrc
        )
        self._nominated: dict[int, Any] = self.dtls.transport._connection._nominated
        self._route: Route | None = None
        self.dtls.on("statechange", self._forget_route)

    def protect(self, data: bytes) -> bytes | None:
        """SRTP-protect an RTP packet, or None while the connection is not up."""
        route = self.route()
        return route.protect(data) if route is not None else None

    def route(self) -> "Route | None":
        """How this sender's packets get on the wire now, or None while the
        connection is not up: worked out again only when the DTLS state or the
        nominated ICE pair changes, so that a frame's cost is one lookup."""
        route = self._route
        if route is not None and self._nominated.get(1) is route.pair:
            return route
        route = self._route = self._new_route()
        return route

    def _new_route(self) -> "Route | None":
        session = self.dtls._tx_srtp
        pair = self._nominated.get(1)
        if session is None or pair is None or self.dtls.state != "connected":
            return None
        protocol, address = pair.protocol, pair.remote_addr
        if isinstance(protocol, aioice.ice.StunProtocol) and protocol.transport is not None:
            transport = protocol.transport

            def fallback(data: bytes) -> None:
                transport.sendto(data, address)

            sock = getattr(transport, "_sock", None)  # asyncio's selector transport
            sender = gso.Sender(
                sock if isinstance(sock, socket.socket) else None,
                address,
                fallback,
                getattr(transport, "get_write_buffer_size", lambda: 0),
            )
            return Route(pair, lean_protect(session), sender.send, sender.send_many)

        # a relayed pair: through aioice's TURN client
        def send(data: bytes) -> None:
            spawn(protocol.send_data(data, address), "TURN send")

        def send_many(packets: list[bytes]) -> None:
            for packet in packets:
                send(packet)

        return Route(pair, lean_protect(session), send, send_many)

    def _forget_route(self, *args: Any) -> None:
        self._route = None

    def take_over(self, retransmit: Callable[[int], Any]) -> None:
        """From now on this side sends: aiortc's sender keeps its RTCP (reports,
        REMB, PLI) but its retransmissions come from `retransmit(seq)`."""
        self.sender._retransmit = retransmit  # type: ignore[method-assign,assignment]

    def account(self, packets: int, octets: int, rtp_timestamp: int, ntp: int) -> None:
        """Keep aiortc's sender reports true: what was sent, and when (`ntp`, the
        NTP-format time the frame went out)."""
        sender = self.sender
        sender._RTCRtpSender__packet_count += packets  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
        sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]


def packetize(codec: str, data: bytes) -> list[bytes]:
    """RTP payloads for one encoded frame, as aiortc's encoders make them (VP8 with a
    15-bit picture id of 0, to be patched per subscriber; H.264 as STAP-A/FU-A)."""
    if codec == "vp8":
        return Vp8Encoder._packetize(data, 0)
    if codec == "h264":
        return H264Encoder._packetize(H264Encoder._split_bitstream(data))
    return [data]


def on_sender_start(
    sender: RTCRtpSender, callback: Callable[[RTCRtpCodecParameters], None]
) -> None:
    """Call `callback(codec)` once `sender` starts, with the codec it negotiated."""
    original = sender.send

    async def send(parameters: Any) -> None:
        await original(parameters)
        callback(parameters.codecs[0])

    sender.send = send  # type: ignore[method-assign]


def _header_template(extensions: Any, mid: str | None, ssrc: int) -> tuple[bytes, int | None]:
    """An RTP header as aiortc's sender writes it (the extensions it negotiated),
    with the offset of the 3-byte abs-send-time value, to be patched per packet."""
    probes = []
    for value in (0x000000, 0xFFFFFF):
        packet = RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=ssrc)
        packet.extensions.mid = mid
        packet.extensions.abs_send_time = value
        probes.append(packet.serialize(extensions))
    first, second = probes
    differ = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
    return first, (differ[0] if differ else None)
