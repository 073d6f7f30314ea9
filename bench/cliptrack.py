"""Tracks that send a pre-encoded clip's packets in real time, looped, so that the
publisher encodes nothing.

aiortc's MediaPlayer(decode=False, loop=True) is not used: after a loop its
timestamps jump back to zero and its pacing stops, so it floods the connection.
"""

import asyncio
import fractions
import time
from pathlib import Path

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000


class ClipTrack(MediaStreamTrack):
    """Yields `av.Packet`s of one kind, one every `interval` seconds, from `start`.

    Timestamps count on across loops, so the receiver sees one continuous stream.
    """

    def __init__(self, kind: str, payloads: list[bytes], interval: float, start: float) -> None:
        super().__init__()
        self.kind = kind
        self._payloads = payloads
        self._interval = interval
        self._start = start
        clock = VIDEO_CLOCK if kind == "video" else AUDIO_CLOCK
        self._time_base = fractions.Fraction(1, clock)
        self._step = round(interval * clock)
        self.sent = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        index = self.sent
        delay = self._start + index * self._interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._payloads[index % len(self._payloads)])
        packet.pts = packet.dts = index * self._step
        packet.time_base = self._time_base
        self.sent += 1
        return packet


def read_clip(path: Path) -> tuple[list[bytes], list[bytes], float]:
    """(video frames, Opus packets, video frame interval) of a clip made by bench.clip."""
    video: list[bytes] = []
    audio: list[bytes] = []
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        for packet in container.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                video.append(bytes(packet))
            elif packet.stream.type == "audio":
                audio.append(bytes(packet))
    interval = 1 / float(rate) if rate else 1 / 30
    return video, audio, interval
