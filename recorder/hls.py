"""The HLS ladder, made from the library MP4: each rung is one playlist of MPEG-TS
segments in its own directory, and a master playlist lists them.

The top rung and the audio-only rung copy the MP4's streams as they are (no
encoding). A lower rung decodes the MP4's video, scales it and encodes it again;
its keyframes fall where the MP4's do, so that every rung cuts its segments at the
same instants. Each rung is written to a temporary directory that replaces the old
one when complete.
"""

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import av.container
import av.stream
from av.video.frame import PictureType

from recorder.encoding import AAC_CODECS, VideoRung, add_h264_stream, avc1_codecs

SEGMENT_SECONDS = 4
PLAYLIST = "index.m3u8"
MASTER = "master.m3u8"
_EXTINF = re.compile(r"^#EXTINF:([0-9.]+)")


@dataclass(frozen=True)
class Variant:
    name: str  # directory under hls/: "720p", "360p", "audio"
    width: int | None
    height: int | None
    codecs: str
    bandwidth: int  # peak, bits per second
    average_bandwidth: int

    @property
    def playlist(self) -> str:
        return f"{self.name}/{PLAYLIST}"


def copy_variant(
    mp4: Path,
    hls_dir: Path,
    name: str,
    *,
    video: bool,
    on_progress: Callable[[float], None],
) -> Variant:
    """A rung that carries the MP4's own streams: all of them, or audio only."""
    with av.open(os.fspath(mp4)) as source:
        streams = [s for s in source.streams if s.type == "audio" or (video and s.type == "video")]
        duration = _duration(source)
        codecs: list[str] = []
        size: tuple[int | None, int | None] = (None, None)
        with _HlsWriter(hls_dir, name) as writer:
            mapping = {s.index: writer.container.add_stream_from_template(s) for s in streams}
            for stream in sorted(streams, key=lambda s: s.type != "video"):  # video first
                if isinstance(stream, av.VideoStream):
                    codecs.append(avc1_codecs(stream.codec_context.extradata) or "avc1.4d401f")
                    size = (stream.codec_context.width, stream.codec_context.height)
                else:
                    codecs.append(AAC_CODECS)
            for packet in source.demux(*streams):
                if packet.dts is None:
                    continue
                if packet.stream.type == "audio" or packet.is_keyframe:
                    on_progress(_fraction(packet, duration))
                packet.stream = mapping[packet.stream.index]
                writer.container.mux(packet)
    return _variant(hls_dir, name, size, ",".join(codecs))


def transcode_variant(
    mp4: Path,
    hls_dir: Path,
    rung: VideoRung,
    *,
    threads: int,
    on_progress: Callable[[float], None],
) -> Variant:
    """A lower rung: the MP4's video scaled to `rung`, with the MP4's audio."""
    with av.open(os.fspath(mp4)) as source:
        video_in = source.streams.video[0]
        video_in.codec_context.thread_count = threads
        audio_in = next(iter(source.streams.audio), None)
        duration = _duration(source)
        codecs = None
        with _HlsWriter(hls_dir, rung.name) as writer:
            video_out = add_h264_stream(writer.container, rung, threads)
            audio_out = writer.container.add_stream_from_template(audio_in) if audio_in else None
            inputs = [video_in] + ([audio_in] if audio_in is not None else [])
            for packet in source.demux(*inputs):
                if packet.dts is None:
                    continue
                if packet.stream.type == "audio":
                    if audio_out is not None:
                        packet.stream = audio_out
                        writer.container.mux(packet)
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    on_progress(_fraction(packet, duration))
                    key = frame.key_frame
                    scaled = frame.reformat(rung.width, rung.height, format="yuv420p")
                    scaled.pts, scaled.time_base = frame.pts, frame.time_base
                    scaled.pict_type = PictureType.I if key else PictureType.NONE
                    for out in video_out.encode(scaled):
                        codecs = codecs or (avc1_codecs(bytes(out)) if out.is_keyframe else None)
                        writer.container.mux(out)
            for out in video_out.encode(None):
                writer.container.mux(out)
    names = [codecs or "avc1.4d401e"] + ([AAC_CODECS] if audio_in is not None else [])
    return _variant(hls_dir, rung.name, (rung.width, rung.height), ",".join(names))


def write_master(hls_dir: Path, variants: list[Variant]) -> None:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        attributes = [
            f"BANDWIDTH={variant.bandwidth}",
            f"AVERAGE-BANDWIDTH={variant.average_bandwidth}",
        ]
        if variant.width and variant.height:
            attributes.append(f"RESOLUTION={variant.width}x{variant.height}")
        attributes.append(f'CODECS="{variant.codecs}"')
        lines += [f"#EXT-X-STREAM-INF:{','.join(attributes)}", variant.playlist]
    path = hls_dir / MASTER
    tmp = hls_dir / f".{MASTER}.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class _HlsWriter:
    """The hls muxer writing into a temporary directory that becomes `hls_dir/name`."""

    def __init__(self, hls_dir: Path, name: str) -> None:
        self.final = hls_dir / name
        self.partial = hls_dir / f".{name}.partial"
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self.container: av.container.OutputContainer = av.open(
            os.fspath(self.partial / PLAYLIST),
            "w",
            format="hls",
            options={
                "hls_time": str(SEGMENT_SECONDS),
                "hls_playlist_type": "vod",
                "hls_list_size": "0",
                "hls_flags": "independent_segments",
                "hls_segment_filename": os.fspath(self.partial / "seg-%05d.ts"),
                # Up to half a second of audio in one PES packet: an audio-only rung
                # costs ~75 kbit/s instead of twice its 64 kbit/s in TS overhead.
                "hls_segment_options": "max_delay=1000000",
            },
        )

    def __enter__(self) -> "_HlsWriter":
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.container.close()
        if error is not None:
            shutil.rmtree(self.partial, ignore_errors=True)
            return
        old = self.final.with_name(f".{self.final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.partial, self.final)
        shutil.rmtree(old, ignore_errors=True)


def _variant(hls_dir: Path, name: str, size: tuple[int | None, int | None], codecs: str) -> Variant:
    """Peak and average bandwidth from the playlist's segment durations and sizes."""
    directory = hls_dir / name
    peak, total_bits, total_seconds = 0.0, 0, 0.0
    seconds: float | None = None
    for line in (directory / PLAYLIST).read_text(encoding="utf-8").splitlines():
        if match := _EXTINF.match(line):
            seconds = float(match.group(1))
        elif line and not line.startswith("#") and seconds is not None:
            bits = (directory / line).stat().st_size * 8
            total_bits += bits
            total_seconds += seconds
            peak = max(peak, bits / max(seconds, 0.5))
            seconds = None
    average = total_bits / total_seconds if total_seconds else 0.0
    return Variant(name, size[0], size[1], codecs, int(peak) + 1, int(average) + 1)


def _duration(container: av.container.InputContainer) -> float:
    return container.duration / av.time_base if container.duration else 0.0


def _fraction(packet: av.Packet, duration: float) -> float:
    if packet.pts is None or packet.time_base is None or duration <= 0:
        return 0.0
    return float(packet.pts * packet.time_base) / duration
