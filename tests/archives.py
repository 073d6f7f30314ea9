"""Lesson archives made without a server, fast: numbered VP8 frames and an Opus tone
written by the recorder's own PacketWriter, into segments of one Archive, with a
clock that moves as the media does (so no test waits in real time)."""

import fractions
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from recorder.archive import Archive
from recorder.writer import PacketWriter
from tests.frames import AUDIO_RATE, numbered_image

FPS = 30
AUDIO_FRAME = AUDIO_RATE // 50  # 20 ms, as WebRTC sends


@dataclass(frozen=True)
class Part:
    """One connection of the teacher: `seconds` of frames numbered from `first`."""

    seconds: float
    first: int = 1
    width: int = 640
    height: int = 360
    audio: bool = True
    tone: float = 440.0


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _vp8_encoder(width: int, height: int) -> av.VideoCodecContext:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.bit_rate = 1_200_000 if width > 640 else 600_000
    encoder.gop_size = 60
    encoder.thread_count = 1
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    return encoder


def _opus_encoder() -> av.AudioCodecContext:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = AUDIO_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 32000
    encoder.options = {"frame_duration": "20", "application": "voip"}
    return encoder


def write_part(archive: Archive, part: Part, clock: FakeClock, reason: str) -> None:
    """One segment: video at 30 fps and 20 ms Opus packets, interleaved by time."""
    segment = archive.new_segment(reason, "vp8")
    writer = PacketWriter(
        archive.directory / segment.file,
        video="vp8",
        audio=part.audio,
        clock=clock,
        sync_interval=1e9,
    )
    video = _vp8_encoder(part.width, part.height)
    opus = _opus_encoder()
    frames = round(part.seconds * FPS)
    audio_frames = round(part.seconds * 50)
    start = clock.now
    samples = 0
    audio_index = 0
    tone = part.tone
    for index in range(frames):
        t = index / FPS
        # audio due up to this video frame's time
        while part.audio and audio_index < audio_frames and audio_index * 0.02 <= t:
            clock.now = start + audio_index * 0.02
            n = np.arange(AUDIO_FRAME) + samples
            wave = (np.sin(2 * np.pi * tone * n / AUDIO_RATE) * 0.3 * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = samples
            samples += AUDIO_FRAME
            for packet in opus.encode(frame):
                writer.write_audio(bytes(packet), audio_index * AUDIO_FRAME)
            audio_index += 1
        clock.now = start + t
        image = numbered_image(part.first + index, part.width, part.height)
        picture = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        picture.pts = index
        for packet in video.encode(picture):
            writer.write_video(bytes(packet), index * 90000 // FPS, packet.is_keyframe)
    clock.now = start + part.seconds
    writer.close()
    archive.end_segment(segment, (part.width, part.height))
    assert writer.error is None


def make_archive(
    directory: Path, parts: list[Part], *, lesson: str = "lesson", gap: float = 2.0
) -> Path:
    """An archive of `parts`, each a segment, `gap` seconds apart; finished."""
    archive = Archive(directory, lesson)
    clock = FakeClock()
    for index, part in enumerate(parts):
        write_part(archive, part, clock, "start" if index == 0 else "reconnect")
        clock.now += gap
    archive.finish()
    return directory


def write_stage(
    archive: Archive, seat: str, seconds: float, tone: float, after: float, clock: FakeClock
) -> None:
    """A classroom on stage for `seconds`, speaking a `tone`, from `after` seconds into
    the archive's last segment (its file's start as the manifest keeps it)."""
    segment = archive.new_stage_file(seat)
    writer = PacketWriter(
        archive.directory / segment.file, video=None, audio=True, clock=clock, sync_interval=1e9
    )
    opus = _opus_encoder()
    start = clock.now
    for index in range(round(seconds * 50)):
        clock.now = start + index * 0.02
        n = np.arange(AUDIO_FRAME) + index * AUDIO_FRAME
        wave = (np.sin(2 * np.pi * tone * n / AUDIO_RATE) * 0.3 * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * AUDIO_FRAME
        for packet in opus.encode(frame):
            writer.write_audio(bytes(packet), index * AUDIO_FRAME)
    clock.now = start + seconds
    writer.close()
    assert writer.error is None
    segment.started = archive.manifest.segments[-1].started + after
    archive.end_segment(segment, None)
