"""Checks on recorded files with the real tools: ffprobe, and PyAV decoding every frame."""

import contextlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

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


def stream(info: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [s for s in info["streams"] if s["codec_type"] == kind]
    assert len(found) == 1, info["streams"]
    return found[0]


def recorded_frames(path: Path) -> list[tuple[int | None, int]]:
    """(number, height) of every frame, in file order, up to a torn end."""
    frames: list[tuple[int | None, int]] = []
    with av.open(str(path)) as container, contextlib.suppress(av.FFmpegError):
        for frame in container.decode(video=0):
            frames.append((read_number(frame), frame.height))
    return frames


def undamaged_frames(path: Path) -> list[tuple[int, int]]:
    frames = recorded_frames(path)
    clean = [(number, height) for number, height in frames if number is not None]
    assert len(clean) == len(frames), "a recorded frame decoded damaged"
    return clean


def recorded_audio(path: Path) -> np.ndarray:
    chunks = []
    with av.open(str(path)) as container, contextlib.suppress(av.FFmpegError):
        for frame in container.decode(audio=0):
            chunks.append(frame.to_ndarray()[0].astype(np.float64))
    return np.concatenate(chunks) if chunks else np.zeros(0)
