"""A ladder layer's encoder: fixed bitrate, one thread, keyframes on request.

aiortc's own encoders do not fit a ladder: they return RTP payloads, clamp the
bitrate (VP8 to 250 kbps–1.5 Mbps), and rebuild themselves, with a keyframe, on every
bitrate change (research file §2.1). This one keeps libvpx's real-time settings from
aiortc but is built once per input size, and never uses more than one thread (two
libvpx threads at 720p were measured 20× slower on two vCPUs).
"""

import fractions

import av
from av.video.frame import PictureType
from av.video.reformatter import Interpolation, VideoReformatter

from media.bitstream import H264, VP8

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


def scaled_size(width: int, height: int, target_height: int) -> tuple[int, int]:
    """Keep the aspect ratio; never upscale; even dimensions for 4:2:0. A target
    height of 0 keeps the height (the courseware's "blackboard" layer)."""
    out_height = min(target_height, height) if target_height > 0 else height
    out_width = round(width * out_height / height)
    return max(2, out_width - out_width % 2), max(2, out_height - out_height % 2)


class LayerEncoder:
    """Scales and encodes frames for one layer. Runs in the ladder's worker thread."""

    def __init__(self, codec: str, target_height: int, bitrate: int, fps: float) -> None:
        self.codec_name = codec
        self.target_height = target_height
        self.bitrate = bitrate
        self.fps = fps
        self._codec: av.VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None
        self._input_size: tuple[int, int] | None = None
        self._reformatter = VideoReformatter()  # one per layer: sharing one deadlocks
        self.frames = 0
        self.keyframes = 0

    @property
    def size(self) -> tuple[int, int] | None:
        return self._size

    def encode(self, frame: av.VideoFrame, keyframe: bool) -> list[tuple[bytes, bool]]:
        """Encode one input frame; returns [(encoded frame, is keyframe)]."""
        if self._input_size != (frame.width, frame.height):
            self._input_size = (frame.width, frame.height)
            self._size = scaled_size(frame.width, frame.height, self.target_height)
            self._codec = self._open(*self._size)
        assert self._codec is not None and self._size is not None
        width, height = self._size
        scaled = self._reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="yuv420p",
            interpolation=Interpolation.BILINEAR,
        )
        scaled.pts = frame.pts
        scaled.time_base = frame.time_base
        if keyframe:
            scaled.pict_type = PictureType.I
        out = []
        for packet in self._codec.encode(scaled):
            is_key = bool(packet.is_keyframe)
            self.frames += 1
            self.keyframes += is_key
            out.append((bytes(packet), is_key))
        return out

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        if self.codec_name == VP8:
            codec = av.CodecContext.create("libvpx", "w")
            codec.options = {
                "bufsize": str(self.bitrate),
                "cpu-used": "-6",
                "deadline": "realtime",
                "lag-in-frames": "0",
                "minrate": str(self.bitrate),
                "maxrate": str(self.bitrate),
                "noise-sensitivity": "4",
                "overshoot-pct": "15",
                "partitions": "0",
                "static-thresh": "1",
                "undershoot-pct": "100",
            }
            codec.qmin = 2
            codec.qmax = 56
        elif self.codec_name == H264:
            codec = av.CodecContext.create("libx264", "w")
            codec.options = {
                "preset": "veryfast",
                "tune": "zerolatency",
                "level": "31",
                "nal-hrd": "cbr",
                "maxrate": str(self.bitrate),
                "bufsize": str(self.bitrate),
                "x264-params": "repeat-headers=1:annexb=1",
            }
            codec.profile = "Baseline"
        else:
            raise ValueError(f"no layer encoder for {self.codec_name}")
        assert isinstance(codec, av.VideoCodecContext)
        codec.width = width
        codec.height = height
        codec.bit_rate = self.bitrate
        codec.pix_fmt = "yuv420p"
        codec.framerate = fractions.Fraction(round(self.fps), 1)
        codec.time_base = VIDEO_TIME_BASE
        codec.gop_size = 3000  # keyframes on request only
        codec.thread_count = 1
        return codec
