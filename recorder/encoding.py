"""Encoder settings shared by every library rendition: H.264 (libx264) and AAC.

Keyframes fall on a fixed grid of output time (every `KEYFRAME_SECONDS`), the same
in every rendition, so that HLS segments of different rungs start at the same
instants and a player can switch between them; x264 adds none of its own.
"""

import fractions
from dataclasses import dataclass

import av
import av.stream
from av.video.frame import PictureType

from recorder.soundtrack import RATE

KEYFRAME_SECONDS = 2.0
VIDEO_CLOCK = 90000
VIDEO_BASE = fractions.Fraction(1, VIDEO_CLOCK)
AUDIO_BASE = fractions.Fraction(1, RATE)
AAC_BITRATE = 64000  # speech; the same AAC goes into every rendition
AAC_CODECS = "mp4a.40.2"  # AAC-LC


@dataclass(frozen=True)
class VideoRung:
    name: str  # "720p", "360p"
    width: int
    height: int
    crf: int
    maxrate: int  # bits per second, a cap on crf's choice (HLS needs a bound)

    @property
    def bufsize(self) -> int:
        return self.maxrate * 2


def add_h264_stream(
    container: av.container.OutputContainer, rung: VideoRung, threads: int
) -> av.VideoStream:
    stream = container.add_stream(
        "libx264",
        rate=30,
        options={
            "preset": "veryfast",
            "profile": "main",  # plays on every browser and on old phones
            "crf": str(rung.crf),
            "maxrate": str(rung.maxrate),
            "bufsize": str(rung.bufsize),
            "forced-idr": "1",
            "x264-params": "scenecut=0:keyint=100000:min-keyint=100000",
        },
    )
    stream.width, stream.height, stream.pix_fmt = rung.width, rung.height, "yuv420p"
    stream.time_base = VIDEO_BASE
    stream.codec_context.time_base = VIDEO_BASE
    stream.codec_context.thread_count = threads
    stream.disposition = av.stream.Disposition.default
    return stream


def add_aac_stream(container: av.container.OutputContainer) -> av.AudioStream:
    stream = container.add_stream("aac", rate=RATE, layout="stereo")
    stream.bit_rate = AAC_BITRATE
    stream.time_base = AUDIO_BASE
    stream.disposition = av.stream.Disposition.default
    return stream


class KeyframeGrid:
    """Marks the first frame at or after each multiple of `KEYFRAME_SECONDS`."""

    def __init__(self, interval: float = KEYFRAME_SECONDS) -> None:
        self.interval = interval
        self._next = 0.0

    def mark(self, frame: av.VideoFrame, time: float) -> None:
        if time + 1e-6 >= self._next:
            frame.pict_type = PictureType.I
            while self._next <= time + 1e-6:
                self._next += self.interval
        else:
            frame.pict_type = PictureType.NONE


def avc1_codecs(data: bytes | None) -> str | None:
    """The RFC 6381 codecs string ("avc1.4d401f") from avcC extradata or from an
    Annex B access unit holding an SPS; None if neither is there."""
    if not data:
        return None
    if data[0] == 1 and len(data) >= 4:  # avcC: version, profile, compatibility, level
        return f"avc1.{data[1]:02x}{data[2]:02x}{data[3]:02x}"
    start = 0
    while (index := data.find(b"\x00\x00\x01", start)) >= 0 and index + 6 < len(data):
        if data[index + 3] & 0x1F == 7:
            sps = data[index + 4 : index + 7]
            return f"avc1.{sps[0]:02x}{sps[1]:02x}{sps[2]:02x}"
        start = index + 3
    return None
