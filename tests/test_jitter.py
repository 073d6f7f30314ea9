"""The client's jitter buffer: no multi-second stall when a packet is lost twice."""

import fractions
from typing import Any

import av
from aiortc.codecs import depayload
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from media.jitter import ResilientJitterBuffer

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def vp8_stream(frames: list[bool], size: int = 3000, start_seq: int = 65530) -> list[RtpPacket]:
    """RTP packets for frames (True = keyframe), as aiortc's sender would packetize
    them. Sequence numbers wrap on purpose."""
    encoder = Vp8Encoder()
    packets = []
    seq = start_seq
    for index, key in enumerate(frames):
        body = bytes([0x10 if key else 0x11]) + bytes([index % 256]) * (size - 1)
        packet = av.Packet(body)
        packet.pts = index * 3000
        packet.time_base = fractions.Fraction(1, 90000)
        payloads, timestamp = encoder.pack(packet)
        for i, payload in enumerate(payloads):
            rtp = RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=timestamp)
            rtp.payload = payload
            rtp.marker = 1 if i == len(payloads) - 1 else 0
            rtp._data = depayload(VP8, payload)  # type: ignore[attr-defined]
            packets.append(rtp)
            seq += 1
    return packets


def frame_index(frame) -> int:
    return frame.data[1]


def test_a_frame_is_released_as_soon_as_its_last_packet_arrives() -> None:
    buffer = ResilientJitterBuffer("video", "vp8", clock=Clock())
    packets = vp8_stream([True, False, False])
    out = []
    for packet in packets:
        _pli, frame = buffer.add(packet)
        if frame is not None:
            out.append((frame_index(frame), packet.marker))
    assert out == [(0, 1), (1, 1), (2, 1)], "frames must not wait for the next frame"


def test_a_retransmitted_packet_releases_the_frames_held_behind_it() -> None:
    clock = Clock()
    buffer = ResilientJitterBuffer("video", "vp8", clock=clock)
    extra: list[Any] = []
    buffer.overflow = extra.append
    packets = vp8_stream([True, False, False, False])
    lost = packets[4]  # a packet of frame 1
    out = []
    for packet in packets:
        if packet is lost:
            continue
        clock.now += 0.01
        _pli, frame = buffer.add(packet)
        if frame is not None:
            out.append(frame_index(frame))
    assert out == [0]
    assert lost.sequence_number in buffer.missing()
    clock.now += 0.2
    pli, frame = buffer.add(lost)
    assert not pli and frame is not None
    assert [*(frame_index(f) for f in extra), frame_index(frame)] == [1, 2, 3]
    assert buffer.missing() == []


def test_a_packet_lost_for_good_costs_one_keyframe_wait_not_seconds() -> None:
    clock = Clock()
    buffer = ResilientJitterBuffer("video", "vp8", clock=clock, max_wait=0.5)
    pattern = [True] + [False] * 29 + [True] + [False] * 9
    packets = vp8_stream(pattern)
    first_of_frame_5 = next(p for p in packets if p.timestamp == packets[0].timestamp + 5 * 3000)
    released = []
    plis = 0
    for packet in packets:
        if packet is first_of_frame_5:
            continue
        clock.now += 1 / 30 / 3
        pli, frame = buffer.add(packet)
        plis += pli
        if frame is not None:
            released.append(frame_index(frame))
    assert released[:5] == [0, 1, 2, 3, 4]
    assert 30 in released, "the stream did not resume at the next keyframe"
    assert released[released.index(30) :] == list(range(30, 40))
    assert plis >= 1, "giving up on a frame must ask for a keyframe"
    assert len(buffer._packets) < 50, "the buffer kept what it gave up"


def test_audio_skips_a_lost_packet_after_a_short_wait() -> None:
    clock = Clock()
    buffer = ResilientJitterBuffer("audio", "opus", clock=clock)
    out = []
    for seq in range(20):
        if seq == 5:
            continue
        clock.now += 0.02
        packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960)
        packet.payload = bytes([seq])
        packet._data = packet.payload  # type: ignore[attr-defined]
        _pli, frame = buffer.add(packet)
        if frame is not None:
            out.append(frame.data[0])
    assert out[:5] == [0, 1, 2, 3, 4]
    assert 5 not in out
    assert out[-1] >= 17, "audio stalled behind the lost packet"


def test_a_keyframe_that_lost_a_packet_for_good_does_not_stop_the_buffer() -> None:
    clock = Clock()
    buffer = ResilientJitterBuffer("video", "vp8", clock=clock, max_wait=0.5)
    pattern = [True] + [False] * 9 + [True] + [False] * 9
    packets = vp8_stream(pattern)
    keyframe = [p for p in packets if p.timestamp == packets[0].timestamp]
    assert len(keyframe) >= 2
    lost = keyframe[1]  # the first keyframe never completes
    released: list[int] = []
    buffer.overflow = lambda frame: released.append(frame_index(frame))
    for packet in packets:
        if packet is lost:
            continue
        clock.now += 1 / 30 / 3
        _pli, frame = buffer.add(packet)
        if frame is not None:
            released.append(frame_index(frame))
    assert released[:1] == [10], f"the buffer never moved on to the next keyframe: {released}"
    assert released == list(range(10, 20))


def test_a_complete_keyframe_after_a_gap_is_played_at_once() -> None:
    """A layer switch: packets lost on the old layer, then the new layer's keyframe.
    Nothing before that keyframe matters; waiting for it would freeze the picture."""
    clock = Clock()
    buffer = ResilientJitterBuffer("video", "vp8", clock=clock, max_wait=1.0)
    released: list[int] = []
    buffer.overflow = lambda frame: released.append(frame_index(frame))
    packets = vp8_stream([True, False, False, True, False])
    lost = next(p for p in packets if p.timestamp == packets[0].timestamp + 2 * 3000)
    for packet in packets:
        if packet is lost:
            continue
        clock.now += 0.001  # all within a few milliseconds: no waiting out the gap
        _pli, frame = buffer.add(packet)
        if frame is not None:
            released.append(frame_index(frame))
    assert released == [0, 1, 3, 4]
