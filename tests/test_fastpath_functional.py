"""The fast send path keeps what aiortc's sender did: retransmissions, sender and
receiver reports, streams that stay continuous across layer switches, and padding
that a receiver takes as padding."""

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

from media.fastsender import FastSender
from tests.conftest import RunningServer, make_settings, start_server
from tests.peers import Classroom, Teacher

pytestmark = pytest.mark.timeout(90)


def video_receiver(room: Classroom) -> Any:
    return next(t.receiver for t in room.pc.getTransceivers() if t.kind == "video")


async def joined(server: RunningServer, lesson: str) -> tuple[Teacher, Classroom]:
    """A teacher publishing and a classroom receiving, in `lesson`."""
    teacher = Teacher(server.url, server.token(lesson, "teacher"))
    room = Classroom(server.url, server.token(lesson, "classroom"))
    await teacher.join()
    await teacher.publish()
    await room.join()
    await room.subscribe()
    return teacher, room


def fast_senders(server: RunningServer, lesson: str) -> list[FastSender]:
    found = server.lessons.get(lesson)
    assert found is not None
    senders = []
    for peer in found.peers.values():
        for _, down in peer.downs:
            track = getattr(down, "track", None)
            if isinstance(track, FastSender):
                senders.append(track)
    return senders


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "aiortc"])
async def test_a_nacked_packet_is_sent_again_and_the_frame_completes(
    tmp_path: Path, fast: bool
) -> None:
    runner, server = await start_server(make_settings(tmp_path, media={"fast_path": fast}))
    try:
        await nacked_packets_are_sent_again(server, fast)
    finally:
        await runner.cleanup()


async def nacked_packets_are_sent_again(server: RunningServer, fast: bool) -> None:
    teacher, room = await joined(server, "n")
    receiver = video_receiver(room)
    original = receiver._handle_rtp_packet
    dropped: set[int] = set()
    media_pts: set[int] = set()

    async def lossy(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not media_pts and packet.payload_type < 120:
            media_pts.add(packet.payload_type)
        seq = packet.sequence_number
        # lose every 40th media packet once; its retransmission comes as RTX
        if packet.payload_type in media_pts and seq % 40 == 0 and seq not in dropped:
            dropped.add(seq)
            return
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = lossy
    try:
        await room.wait_frames(150, timeout=30)
    finally:
        retransmitted = sum(s.retransmitted for s in fast_senders(server, "n"))
        await room.close()
        await teacher.close()
    assert dropped, "nothing was lost"
    if fast:
        assert retransmitted >= len(dropped) // 2, (retransmitted, len(dropped))
    numbers = room.numbers
    assert numbers == sorted(numbers)
    assert room.damaged == 0
    span = numbers[-1] - numbers[0] + 1
    assert len(numbers) >= 0.97 * span, f"{span - len(numbers)} frames lost despite RTX"


async def test_sender_and_receiver_reports_flow(server: RunningServer) -> None:
    teacher, room = await joined(server, "sr")
    try:
        await room.wait_frames(30)
        await asyncio.sleep(3)
        stats = await video_receiver(room).getStats()
        remote = [s for s in stats.values() if s.type == "remote-outbound-rtp"]
        assert remote and remote[0].packetsSent > 100, "no sender report reached the classroom"
        lesson = server.lessons.get("sr")
        assert lesson is not None
        peer = next(p for p in lesson.peers.values() if p.role == "classroom")
        downlink = peer.downlinks[0]
        assert downlink.feedback is not None and downlink.feedback.reports >= 2
        assert downlink.stats().rtt_ms is not None, "no round trip from receiver reports"
        # the sender report counts what the fast path sent
        packets, _octets = downlink.counters()
        sent = sum(s.packets_sent for s in fast_senders(server, "sr") if s.kind == "video")
        assert packets == sent
    finally:
        await room.close()
        await teacher.close()


async def test_a_layer_switch_keeps_sequence_numbers_and_picture_ids_continuous(
    server: RunningServer,
) -> None:
    teacher, room = await joined(server, "sw")
    receiver = video_receiver(room)
    original = receiver._handle_rtp_packet
    seen: list[tuple[int, int | None, int]] = []  # (seq, picture id if first of frame, ssrc)

    async def watch(packet: RtpPacket, arrival_time_ms: int) -> None:
        if packet.payload and packet.payload_type < 120:
            descriptor, _ = VpxPayloadDescriptor.parse(packet.payload)
            if descriptor.partition_start and descriptor.partition_id == 0:
                seen.append((packet.sequence_number, descriptor.picture_id, packet.ssrc))
            else:
                seen.append((packet.sequence_number, None, packet.ssrc))
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = watch
    try:
        await room.wait_frames(30)
        for cap in ("low", "auto"):
            await room.signalling.send({"type": "quality", "cap": cap})
            deadline = time.monotonic() + 20
            want = (320, 180) if cap == "low" else (640, 360)
            while room.last_size != want:
                assert time.monotonic() < deadline, f"no switch to {want}"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
    finally:
        await room.close()
        await teacher.close()
    assert len({ssrc for _, _, ssrc in seen}) == 1, "the SSRC changed at a switch"
    ordered = sorted(seen, key=lambda s: s[0])
    sequences = [s for s, _, _ in ordered]
    gaps = [b - a for a, b in itertools.pairwise(sequences) if b - a != 1]
    assert not gaps, f"sequence numbers jumped: {gaps[:5]}"
    pictures = [p for _, p, _ in ordered if p is not None]
    steps = {(b - a) % (1 << 15) for a, b in itertools.pairwise(pictures)}
    assert steps == {1}, f"picture ids jumped: {steps}"
    assert room.sizes >= {(320, 180), (640, 360)}, "no layer switch happened"


async def test_padding_reaches_the_classroom_as_padding_and_the_picture_goes_on(
    server: RunningServer,
) -> None:
    teacher, room = await joined(server, "pad")
    receiver = video_receiver(room)
    original = receiver._handle_rtp_packet
    padding: list[tuple[float, int]] = []  # (when, bytes of padding)

    async def watch(packet: RtpPacket, arrival_time_ms: int) -> None:
        if packet.padding_size and not packet.payload:
            padding.append((time.monotonic(), packet.padding_size))
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = watch
    try:
        await room.wait_frames(30)
        video = next(s for s in fast_senders(server, "pad") if s.kind == "video")
        assert video.can_pad, "RTX was not negotiated"
        before = len(room.numbers)
        started = time.monotonic()
        video.pad(400_000, ramp=0.5)
        await asyncio.sleep(2.5)
        video.pad(0)
        stopped = time.monotonic()
        await asyncio.sleep(1.0)
        after = len(room.numbers)
    finally:
        await room.close()
        await teacher.close()
    sent = sum(size for _, size in padding) * 8
    # 0.5 s of ramp and 2 s at 400 kbit/s: about 900 kbit on the wire, ~85 % of it padding
    assert 400_000 < sent < 1_000_000, f"{sent} bits of padding"
    late = [t for t, _ in padding if t > stopped + 0.2]
    assert not late, f"{len(late)} padding packets after it stopped"
    assert all(t >= started for t, _ in padding), "padding before it was asked for"
    assert after - before >= 60, "the picture stopped while padded"
    numbers = room.numbers
    assert numbers == sorted(numbers) and room.damaged == 0
