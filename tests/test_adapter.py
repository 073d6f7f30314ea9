"""One test per reach into aiortc's internals (media/adapter.py), on two real peers.

When an aiortc upgrade moves one of these private attributes, the matching test here
fails and names it.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import av
import pylibsrtp
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import RtpPacket

from media import adapter
from media.bitstream import is_keyframe
from media.retransmitbudget import RetransmitBudget
from tests.frames import NumberedVideoTrack, ToneAudioTrack, read_number

pytestmark = pytest.mark.timeout(60)


@dataclass
class Pair:
    publisher: RTCPeerConnection
    subscriber: RTCPeerConnection
    video_sender: RTCRtpSender
    audio_sender: RTCRtpSender
    video_receiver: RTCRtpReceiver | None = None
    audio_receiver: RTCRtpReceiver | None = None
    frames: list[tuple[bytes, int]] = field(default_factory=list)
    audio_packets: list[RtpPacket] = field(default_factory=list)
    video_rtp: adapter.RtpTap | None = None
    audio_rtp: adapter.RtpTap | None = None


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    adapter.set_host_addresses(["127.0.0.1"])
    adapter.enable_opus_fec()
    publisher, subscriber = RTCPeerConnection(), RTCPeerConnection()
    video_sender = publisher.addTransceiver(NumberedVideoTrack(320, 240), "sendonly").sender
    audio_sender = publisher.addTransceiver(ToneAudioTrack(), "sendonly").sender
    result = Pair(publisher, subscriber, video_sender, audio_sender)
    await publisher.setLocalDescription(await publisher.createOffer())
    await subscriber.setRemoteDescription(publisher.localDescription)
    for transceiver in subscriber.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind == "video":
            result.video_receiver = receiver
            adapter.tap_frames(receiver, lambda data, ts: result.frames.append((data, ts)))
            result.video_rtp = adapter.RtpTap(receiver, None)
        else:
            result.audio_receiver = receiver
            adapter.tap_frames(receiver, None)
            result.audio_rtp = adapter.RtpTap(receiver, result.audio_packets.append)
    await subscriber.setLocalDescription(await subscriber.createAnswer())
    await publisher.setRemoteDescription(subscriber.localDescription)
    try:
        yield result
    finally:
        await asyncio.shield(publisher.close())
        await asyncio.shield(subscriber.close())


async def test_tap_frames_hands_over_encoded_frames_that_decode_in_order(pair: Pair) -> None:
    await wait_until(lambda: len(pair.frames) >= 30)
    assert is_keyframe("vp8", pair.frames[0][0]), "the first tapped frame is not a keyframe"
    decoder = av.CodecContext.create("vp8", "r")
    numbers = []
    for data, _timestamp in pair.frames:
        for frame in decoder.decode(av.Packet(data)):
            numbers.append(read_number(frame))
    clean = [n for n in numbers if n is not None]
    assert len(clean) == len(numbers), "a tapped frame decoded to a damaged picture"
    assert clean == list(range(clean[0], clean[0] + len(clean)))
    timestamps = [ts for _, ts in pair.frames]
    assert timestamps == sorted(timestamps)
    # aiortc's own decoder saw nothing: its track queue stays empty
    assert pair.video_receiver is not None and pair.video_receiver.track is not None
    assert pair.video_receiver.track._queue.qsize() == 0  # type: ignore[attr-defined]


async def test_rtp_tap_names_the_media_ssrc_and_passes_opus_payloads(pair: Pair) -> None:
    await wait_until(lambda: len(pair.audio_packets) >= 25)
    assert pair.video_rtp is not None and pair.audio_rtp is not None
    await wait_until(lambda: pair.video_rtp is not None and pair.video_rtp.media_ssrc is not None)
    assert pair.video_rtp.media_ssrc == pair.video_sender._ssrc
    assert pair.audio_rtp.media_ssrc == pair.audio_sender._ssrc
    decoder = av.CodecContext.create("opus", "r")
    decoded = 0
    for packet in pair.audio_packets[:25]:
        decoded += sum(f.samples for f in decoder.decode(av.Packet(packet.payload)))
    assert decoded >= 24 * 960
    # decoding switched off: nothing accumulates behind the audio track
    assert pair.audio_receiver is not None and pair.audio_receiver.track is not None
    assert pair.audio_receiver.track._queue.qsize() == 0  # type: ignore[attr-defined]


async def test_send_pli_reaches_the_publishers_keyframe_hook(pair: Pair) -> None:
    requests: list[float] = []
    adapter.on_keyframe_request(pair.video_sender, lambda: requests.append(time.monotonic()))
    await wait_until(lambda: pair.video_rtp is not None and pair.video_rtp.media_ssrc is not None)
    assert pair.video_receiver is not None and pair.video_rtp is not None
    assert pair.video_rtp.media_ssrc is not None
    await adapter.send_pli(pair.video_receiver, pair.video_rtp.media_ssrc)
    await wait_until(lambda: len(requests) == 1)


async def test_tap_rtcp_reads_receiver_reports_and_remb(pair: Pair) -> None:
    feedback = adapter.tap_rtcp(pair.video_sender)
    await wait_until(lambda: feedback.reports >= 2 and feedback.remb_bps is not None, timeout=15)
    assert feedback.remb_bps is not None and feedback.remb_bps > 0
    assert feedback.highest_sequence > 0
    assert adapter.sender_rtt(pair.video_sender) is not None


async def test_sender_counters_count_what_was_sent(pair: Pair) -> None:
    await wait_until(lambda: len(pair.frames) >= 10)
    packets, octets = adapter.sender_counters(pair.video_sender)
    assert packets >= 10
    assert octets > 1000


async def test_receiver_codecs_after_negotiation(pair: Pair) -> None:
    await wait_until(lambda: len(pair.frames) >= 1)
    assert pair.video_receiver is not None
    names = {c.mimeType.lower() for c in adapter.receiver_codecs(pair.video_receiver).values()}
    assert "video/vp8" in names


async def test_set_host_addresses_decides_the_host_candidates(pair: Pair) -> None:
    sdp = pair.subscriber.localDescription.sdp
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates
    assert all(" 127.0.0.1 " in line for line in candidates)


async def test_enable_opus_fec_puts_inband_fec_in_the_answer(pair: Pair) -> None:
    assert "useinbandfec=1" in pair.subscriber.localDescription.sdp


async def test_rtx_ssrcs_are_routed_to_their_receiver(pair: Pair) -> None:
    await wait_until(lambda: len(pair.frames) >= 5)
    assert pair.video_receiver is not None
    router = pair.video_receiver.transport._rtp_router
    rtx = pair.video_receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    assert rtx, "the offer declared an RTX SSRC"
    assert all(router.ssrc_table.get(ssrc) is pair.video_receiver for ssrc in rtx)


def test_retransmissions_are_held_to_a_budget() -> None:
    budget = RetransmitBudget(share=0.25, floor=10.0, repeat=0.3)
    # 100 packets a second sent: at most max(10, 25) resends a second, each seq once
    allowed = budget.allow(list(range(100)), packets_sent=100)
    assert len(allowed) <= 25
    again = budget.allow(allowed[:5], packets_sent=100)
    assert again == [], "a packet was resent twice within the repeat interval"


def _srtp_sessions(key: bytes) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    def policy(kind: int) -> pylibsrtp.Policy:
        made = pylibsrtp.Policy(key=key, ssrc_type=kind)
        made.allow_repeat_tx = True
        return made

    return (
        pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)),
        pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_INBOUND)),
    )


def test_lean_protect_writes_what_pylibsrtp_writes_and_the_far_end_reads_it() -> None:
    key = bytes(range(30))
    stock, _ = _srtp_sessions(key)
    sender, receiver = _srtp_sessions(key)
    protect = adapter.lean_protect(sender)
    for sequence in range(100, 140):
        packet = RtpPacket(payload_type=96, sequence_number=sequence, timestamp=sequence * 3000)
        packet.ssrc = 1234
        packet.payload = bytes([sequence % 256]) * (200 + sequence)
        plain = packet.serialize()
        protected = protect(plain)
        assert protected == stock.protect(plain)
        assert receiver.unprotect(protected) == plain
    with pytest.raises(ValueError, match="too long"):
        protect(bytes(1500))
