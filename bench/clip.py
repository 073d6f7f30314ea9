"""The teacher's clip: 720p VP8 at about 1.5 Mbps plus an Opus tone, encoded once.

Each video frame carries its number in big blocks (tests/frames.py), so a decoding
receiver can check what arrives; a sliding noise texture around and over the blocks
keeps the encoder busy enough to reach the target bitrate.
"""

import fractions
from pathlib import Path

import av
import numpy as np

from tests.frames import numbered_image

WIDTH, HEIGHT, FPS = 1280, 720, 30
VIDEO_BITRATE = 1_500_000
AUDIO_RATE = 48000
TONE_HZ = 440.0


def _texture(seed: int = 1) -> np.ndarray:
    """A smooth random texture, twice the frame's size, to slide a window over."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(small, 16, axis=0), 16, axis=1)  # 2x the frame, 16px cells
    return (big.astype(np.int16) - 128) // 3


def frame_image(number: int, texture: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Frame `number` (1-based): numbered blocks, a moving texture, some noise."""
    image = numbered_image(number, WIDTH, HEIGHT).astype(np.int16)
    dy = (number * 3) % HEIGHT
    dx = (number * 5) % WIDTH
    image += texture[dy : dy + HEIGHT, dx : dx + WIDTH]
    shift = (number * 7919) % (noise.shape[0] - HEIGHT)
    image += noise[shift : shift + HEIGHT]
    return np.clip(image, 0, 255).astype(np.uint8)


def make_clip(path: Path, seconds: float = 10.0, keyframe_interval: int = 60) -> Path:
    """Write the clip to `path` (.webm): VP8 CBR at VIDEO_BITRATE, Opus 20 ms frames."""
    texture = _texture()
    rng = np.random.default_rng(2)
    noise = rng.integers(-12, 13, size=(HEIGHT + 97, WIDTH, 3), dtype=np.int16)
    frames = round(seconds * FPS)
    with av.open(str(path), "w", format="webm") as container:
        video = container.add_stream("libvpx", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.bit_rate = VIDEO_BITRATE
        video.gop_size = keyframe_interval
        video.thread_count = 1
        video.options = {
            "deadline": "realtime",
            "cpu-used": "4",
            "lag-in-frames": "0",
            "minrate": str(VIDEO_BITRATE),
            "maxrate": str(VIDEO_BITRATE),
            "bufsize": str(VIDEO_BITRATE),
            "undershoot-pct": "95",
            "overshoot-pct": "15",
        }
        audio = container.add_stream("libopus", rate=AUDIO_RATE)
        audio.layout = "mono"
        audio.bit_rate = 48000
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(index + 1, texture, noise), "rgb24")
            frame.pts = index
            frame.time_base = fractions.Fraction(1, FPS)
            container.mux(video.encode(frame.reformat(format="yuv420p")))
        container.mux(video.encode(None))
        samples = round(seconds * AUDIO_RATE)
        t = np.arange(samples) / AUDIO_RATE
        wave = (np.sin(2 * np.pi * TONE_HZ * t) * 0.3 * 32767).astype(np.int16)
        chunk = AUDIO_RATE // 50
        for start in range(0, samples - chunk + 1, chunk):
            piece = av.AudioFrame.from_ndarray(
                wave[start : start + chunk].reshape(1, -1), format="s16", layout="mono"
            )
            piece.sample_rate = AUDIO_RATE
            piece.pts = start
            piece.time_base = fractions.Fraction(1, AUDIO_RATE)
            container.mux(audio.encode(piece))
        container.mux(audio.encode(None))
    return path
