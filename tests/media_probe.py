"""Checks on recorded files with the real tools: ffprobe, and PyAV decoding every frame."""

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import av

from tests.frames import read_number


def ffprobe(path: Path) -> dict:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


@dataclass
class Decoded:
    numbers: list[int] = field(default_factory=list)
    damaged: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    keyframe_times: list[float] = field(default_factory=list)
    video_seconds: float = 0.0
    audio_samples: int = 0


def decode_all(path: Path) -> Decoded:
    """Decode every video and audio frame of a file."""
    out = Decoded()
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        for packet in container.demux(*streams):
            if packet.stream.type == "video" and packet.is_keyframe and packet.pts is not None:
                out.keyframe_times.append(float(packet.pts * packet.time_base))
            try:
                frames = packet.decode()
            except av.FFmpegError:
                if packet.stream.type == "video":
                    out.damaged += 1
                continue
            for frame in frames:
                if isinstance(frame, av.VideoFrame):
                    out.sizes.add((frame.width, frame.height))
                    number = read_number(frame)
                    if number is None:
                        out.damaged += 1
                    else:
                        out.numbers.append(number)
                    if frame.time is not None:
                        out.video_seconds = max(out.video_seconds, frame.time)
                elif isinstance(frame, av.AudioFrame):
                    out.audio_samples += frame.samples
    return out
