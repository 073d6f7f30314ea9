"""The file side of a recording: one PyAV output container, used from one thread.

Containers that survive a crash: Matroska or WebM (VP8 or H.264, with Opus) written
in clusters of at most a second, or fragmented MP4 (H.264 and Opus) in fragments of
at most a second. Each finished cluster or fragment goes to the file at once, so a
killed process leaves a file that plays up to a second or two before the cut (the
cluster being filled, and what FFmpeg holds back to interleave one stream with the
other); a clean `close()` adds the index (cues) and duration, so the file seeks.
"""

import fractions
import os
from pathlib import Path

import av
import av.stream

from media.bitstream import H264, VP8
from recorder.opus import OPUS_RATE, opus_head

VIDEO_CLOCK = 90000
FLUSH_MS = 1000

FORMATS = {
    ".mkv": "matroska",
    ".mka": "matroska",
    ".webm": "webm",
    ".mp4": "mp4",
    ".m4v": "mp4",
}
_CODECS = {"matroska": {VP8, H264}, "webm": {VP8}, "mp4": {H264}}
_OPTIONS = {
    "matroska": {"cluster_time_limit": str(FLUSH_MS)},
    "webm": {"cluster_time_limit": str(FLUSH_MS)},
    "mp4": {
        "movflags": "frag_keyframe+empty_moov+default_base_moof",
        "frag_duration": str(FLUSH_MS * 1000),
    },
}
_COMMON_OPTIONS = {
    "flush_packets": "1",  # hand each finished cluster or fragment to the OS at once
    # Do not hold one stream's packets for long while the other is silent.
    "max_interleave_delta": str(FLUSH_MS * 1000),
}


def container_format(path: str | os.PathLike[str], video_codec: str | None) -> str:
    """The container for `path`, by its extension; ValueError if it cannot hold
    `video_codec` (VP8 needs Matroska or WebM, H.264 Matroska or MP4)."""
    suffix = Path(path).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise ValueError(f"cannot record to {suffix or 'a file without extension'!r}: use .mkv")
    if video_codec is not None and video_codec not in _CODECS[fmt]:
        hint = ".mkv or .webm" if video_codec == VP8 else ".mkv or .mp4"
        raise ValueError(f"{video_codec.upper()} video cannot go in {suffix}: use {hint}")
    return fmt


class Muxer:
    """Streams are added when the file starts (a container cannot gain streams later),
    which is once the first video keyframe has told the picture size."""

    def __init__(self, path: str | os.PathLike[str], video_codec: str | None, audio: bool) -> None:
        self.path = os.fspath(path)
        self.format = container_format(self.path, video_codec)
        self.video_codec = video_codec
        self.audio = audio
        self._container: av.container.OutputContainer | None = None
        self._video: av.stream.Stream | None = None
        self._audio: av.stream.Stream | None = None
        self._video_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._audio_base = fractions.Fraction(1, OPUS_RATE)

    @property
    def started(self) -> bool:
        return self._container is not None

    def start(self, video_size: tuple[int, int] | None) -> None:
        options = {**_OPTIONS[self.format], **_COMMON_OPTIONS}
        container = av.open(self.path, "w", format=self.format, container_options=options)
        try:
            if self.video_codec is not None:
                width, height = video_size or (0, 0)
                video = container.add_mux_stream(self.video_codec, width=width, height=height)
                video.time_base = self._video_base
                video.disposition = av.stream.Disposition.default
                self._video = video
            if self.audio:
                # A stream without a codec context cannot be given channels or codec
                # private data, so this one has a libopus context. It is opened here,
                # before the header, only so that PyAV does not open it later and
                # replace our header with the encoder's; nothing is ever encoded.
                audio = container.add_stream("libopus", rate=OPUS_RATE, layout="stereo")
                audio.codec_context.open()
                audio.codec_context.extradata = opus_head()
                audio.time_base = self._audio_base
                audio.disposition = av.stream.Disposition.default
                self._audio = audio
        except BaseException:
            container.close()
            raise
        self._container = container

    def write_video(self, data: bytes, pts: int, keyframe: bool) -> None:
        assert self._container is not None and self._video is not None
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = self._video_base
        packet.is_keyframe = keyframe
        packet.stream = self._video
        self._container.mux_one(packet)

    def write_audio(self, data: bytes, pts: int) -> None:
        assert self._container is not None and self._audio is not None
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = self._audio_base
        packet.stream = self._audio
        self._container.mux_one(packet)

    def sync(self) -> None:
        """Ask the OS to put what was written on disk (a power cut, not just a crash)."""
        if self._container is not None:
            _fsync(self.path)

    def close(self) -> None:
        """Write the trailer (index, duration) and close. Safe to call again."""
        container, self._container = self._container, None
        if container is not None:
            container.close()
            _fsync(self.path)


def _fsync(path: str) -> None:
    # fsync through any descriptor flushes the file: PyAV does not expose its own.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def h264_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an H.264 access unit that starts a picture, by decoding it."""
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1
    try:
        frames = list(decoder.decode(av.Packet(data)))
        frames += list(decoder.decode(None))
    except av.FFmpegError:
        return None
    for frame in frames:
        if isinstance(frame, av.VideoFrame):
            return frame.width, frame.height
    return None
