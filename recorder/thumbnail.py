"""A still picture for the library page, taken a third of the way into the lesson
(the first seconds are often an empty desk)."""

import fractions
import os
from pathlib import Path

import av

WIDTH = 320
AT = 1 / 3


def write_thumbnail(mp4: Path, target: Path, width: int = WIDTH) -> bool:
    """A JPEG of the MP4's picture; False when the MP4 has no video."""
    with av.open(os.fspath(mp4)) as container:
        if not container.streams.video:
            return False
        stream = container.streams.video[0]
        duration = container.duration / av.time_base if container.duration else 0.0
        if duration > 0:
            container.seek(int(duration * AT * av.time_base), backward=True)
        picture = None
        for frame in container.decode(stream):
            picture = frame
            if frame.time is None or frame.time >= duration * AT - 0.05:
                break
        if picture is None:
            return False
    height = max(2, round(picture.height * width / picture.width / 2) * 2)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = fractions.Fraction(1, 25)
    encoder.options = {"qmin": "2", "qmax": "6"}
    packets = encoder.encode(picture.reformat(width, height, format="yuvj420p"))
    packets += encoder.encode(None)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(b"".join(bytes(p) for p in packets))
    os.replace(partial, target)
    return True
