"""Encoded test media: numbered video frames in VP8 and H.264 and a tone in Opus,
made with the real encoders (cached: tests share them)."""

import fractions
import functools
from typing import Any

import av
import numpy as np

from tests.frames import AUDIO_RATE, numbered_image

FPS = 30
SECONDS = 10
FRAMES = FPS * SECONDS
AUDIO_FRAME = AUDIO_RATE // 50  # 20 ms


@functools.cache
def vp8_frames(
    count: int = FRAMES, width: int = 640, height: int = 360
) -> list[tuple[bytes, bool]]:
    """Numbered frames 1..count, encoded as WebRTC does (realtime, keyframes rare)."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.bit_rate = 600_000
    encoder.gop_size = 150
    encoder.thread_count = 1
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    return _encode(encoder, count, width, height)


@functools.cache
def h264_frames(count: int = FRAMES) -> list[tuple[bytes, bool]]:
    """Numbered frames as Annex B access units, SPS and PPS before each IDR."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 360, "yuv420p"
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.gop_size = 150
    encoder.thread_count = 1
    encoder.options = {"preset": "veryfast", "tune": "zerolatency"}
    return _encode(encoder, count, 640, 360)


def _encode(encoder: Any, count: int, width: int, height: int) -> list[tuple[bytes, bool]]:
    frames = []
    for number in range(1, count + 1):
        image = av.VideoFrame.from_ndarray(numbered_image(number, width, height), format="rgb24")
        image = image.reformat(format="yuv420p")
        image.pts = number - 1
        frames += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(image)]
    frames += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(None)]
    assert len(frames) == count
    return frames


@functools.cache
def opus_packets(count: int = SECONDS * 50, frequency: float = 440.0) -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = AUDIO_RATE, "stereo", "s16"
    encoder.open()
    packets: list[bytes] = []
    for index in range(count):
        t = (np.arange(AUDIO_FRAME) + index * AUDIO_FRAME) / AUDIO_RATE
        wave = (np.sin(2 * np.pi * frequency * t) * 9000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(wave, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * AUDIO_FRAME
        packets += [bytes(p) for p in encoder.encode(frame)]
    while len(packets) < count:  # the encoder's look-ahead holds the last few
        packets.append(packets[-1])
    return packets[:count]
