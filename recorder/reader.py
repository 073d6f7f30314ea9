"""Reading an archive back as one timeline of decoded frames.

The segments are read in the manifest's order and joined end to end: each one
starts where the one before it ended, and time that no segment covers is closed,
not kept (a server that was down for minutes between two segments must not give
the replay minutes of nothing). Within a segment, time is kept as the recorder
wrote it. The recorder goes on writing a segment until the next connection's video
arrives and places packets by their arrival, so a teacher's reconnect keeps its
real length (a still picture and, where nothing was sent, silence), and the joins
are listed in the result.

A segment left by a killed process has no index and may end in a torn cluster:
it is read up to the last packet that decodes. A packet that does not decode is
skipped and counted, never fatal.
"""

import logging
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.container

logger = logging.getLogger(__name__)

# A video frame lasts until the next one; the last one of a segment is given this.
VIDEO_FRAME_SECONDS = 1 / 30


@dataclass(frozen=True)
class SegmentInfo:
    path: Path
    video_size: tuple[int, int] | None
    has_audio: bool
    duration: float | None  # from the container, when it was closed cleanly


@dataclass
class ReadStats:
    damaged: int = 0  # packets that did not decode
    joins: list[float] = field(default_factory=list)  # output times where segments meet
    duration: float = 0.0


@dataclass(frozen=True)
class TimedVideo:
    time: float  # seconds on the output timeline
    frame: av.VideoFrame
    source: str = "camera"  # which picture: the only one until courseware is recorded


@dataclass(frozen=True)
class TimedAudio:
    time: float
    frame: av.AudioFrame


def probe_segment(path: Path) -> SegmentInfo | None:
    """What a segment holds, from its header; None if it cannot be opened at all
    (a segment killed before its header was written)."""
    try:
        with av.open(os.fspath(path)) as container:
            video = next((s for s in container.streams.video), None)
            size = None
            if video is not None and video.codec_context.width > 0:
                size = (video.codec_context.width, video.codec_context.height)
            duration = None
            if container.duration is not None and container.duration > 0:
                duration = container.duration / av.time_base
            return SegmentInfo(path, size, bool(container.streams.audio), duration)
    except (av.FFmpegError, OSError):
        logger.warning("%s: cannot be read, skipped", path)
        return None


def read_timeline(
    segments: list[SegmentInfo], stats: ReadStats
) -> Iterator[TimedVideo | TimedAudio]:
    """Every decoded frame of every segment, in file order, on one timeline."""
    offset = 0.0
    for index, segment in enumerate(segments):
        if index:
            stats.joins.append(offset)
        length = yield from _read_segment(segment, offset, stats)
        offset += length
        stats.duration = offset


def _read_segment(
    segment: SegmentInfo, offset: float, stats: ReadStats
) -> Generator[TimedVideo | TimedAudio, None, float]:
    """Yield one segment's frames shifted by `offset`; return its length in seconds."""
    start: float | None = None
    end = 0.0
    try:
        container = av.open(os.fspath(segment.path))
    except (av.FFmpegError, OSError):
        return 0.0
    with container:
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        for stream in streams:
            stream.codec_context.thread_count = 1
        packets = container.demux(*streams)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:  # a torn end: what came before is kept
                logger.info("%s: read up to a damaged end (%s)", segment.path, exc)
                break
            try:
                frames = packet.decode()
            except av.FFmpegError:
                stats.damaged += 1
                continue
            for frame in frames:
                if not isinstance(frame, av.VideoFrame | av.AudioFrame) or frame.time is None:
                    continue
                if start is None:
                    start = frame.time
                t = offset + max(0.0, frame.time - start)
                if isinstance(frame, av.VideoFrame):
                    end = max(end, t - offset + VIDEO_FRAME_SECONDS)
                    yield TimedVideo(t, frame)
                else:
                    end = max(end, t - offset + frame.samples / frame.sample_rate)
                    yield TimedAudio(t, frame)
    return end
