"""The library's main file: the archive decoded once, composed, and encoded as an
H.264/AAC MP4 with its index first ("faststart"), so that it plays anywhere and
starts before it is fully downloaded. The other renditions are made from it.

It is written to a temporary name and renamed when complete.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av

from recorder.compose import Composer
from recorder.encoding import (
    VIDEO_CLOCK,
    KeyframeGrid,
    VideoRung,
    add_aac_stream,
    add_h264_stream,
)
from recorder.reader import ReadStats, SegmentInfo, TimedVideo, read_timeline
from recorder.soundtrack import Soundtrack
from recorder.stagemix import StageFile, StageMix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mp4Result:
    duration: float
    video_frames: int
    damaged: int
    silence_added: float  # seconds of silence put into holes of the audio
    joins: list[float]
    stage_seconds: float = 0.0  # seconds of on-stage classrooms' audio mixed in


def write_mp4(
    segments: list[SegmentInfo],
    rung: VideoRung | None,
    target: Path,
    *,
    threads: int,
    expected_seconds: float,
    on_progress: Callable[[float], None],
    stage: list[StageFile] | None = None,
) -> Mp4Result:
    """Encode the archive's `segments` into `target`; `rung` None for audio only;
    the `stage` files' audio mixed into the soundtrack."""
    partial = target.with_name(f".{target.name}.partial")
    stats = ReadStats()
    mix = StageMix(stage, stats.joins) if stage else None
    soundtrack = Soundtrack(overlay=mix)
    grid = KeyframeGrid()
    frames = 0
    last_pts = -1
    last_time = 0.0
    container = av.open(os.fspath(partial), "w", format="mp4", options={"movflags": "+faststart"})
    try:
        video = add_h264_stream(container, rung, threads) if rung is not None else None
        audio = add_aac_stream(container)
        composer = Composer(rung.width, rung.height) if rung is not None else None
        for item in read_timeline(segments, stats):
            if isinstance(item, TimedVideo):
                if video is None or composer is None:
                    continue
                composer.update(item.source, item.frame)
                picture = composer.picture()
                if picture is None:
                    continue
                pts = max(round(item.time * VIDEO_CLOCK), last_pts + 1)
                if frames == 0:
                    pts = 0  # the first picture stands from the start
                picture.pts, last_pts = pts, pts
                picture.time_base = video.codec_context.time_base
                grid.mark(picture, pts / VIDEO_CLOCK)
                container.mux(video.encode(picture))
                frames += 1
            else:
                for chunk in soundtrack.add(item.time, item.frame):
                    container.mux(audio.encode(chunk))
            if item.time - last_time >= 0.5:
                last_time = item.time
                on_progress(item.time / expected_seconds if expected_seconds > 0 else 0.0)
        for chunk in soundtrack.fill_to(stats.duration):
            container.mux(audio.encode(chunk))
        for chunk in soundtrack.flush():
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
        if video is not None:
            container.mux(video.encode(None))
    except BaseException:
        container.close()
        partial.unlink(missing_ok=True)
        raise
    container.close()  # writes the index and moves it to the front
    os.replace(partial, target)
    return Mp4Result(
        duration=stats.duration,
        video_frames=frames,
        damaged=stats.damaged,
        silence_added=soundtrack.silence_added / 48000,
        joins=stats.joins,
        stage_seconds=mix.mixed_samples / 48000 if mix is not None else 0.0,
    )
