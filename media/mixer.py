"""Mixing several Opus sources into one, with numpy, so that a listener's downlink
does not grow with the number of speakers.

Each input is decoded as it arrives into a short buffer (a 40 ms prefetch absorbs
network jitter; more than 200 ms is dropped, oldest first, so latency stays
bounded). Every 20 ms the mixer takes one frame from each input that has one, sums
them, limits the sum so that it never clips, encodes it once and pushes it into its
output source. Muted inputs are left out. Peak levels are kept per input, for showing
who speaks.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable, Hashable

import av
import numpy as np

from media.background import spawn
from media.source import Source

logger = logging.getLogger(__name__)

RATE = 48000
FRAME = 960  # 20 ms
PREFETCH = 2 * FRAME
MAX_BUFFER = 10 * FRAME
CEILING = 0.8  # -2 dBFS: room for the codec's overshoot


class _Input:
    def __init__(self) -> None:
        self.decoder = av.CodecContext.create("opus", "r")
        self.buffer = np.zeros(0, dtype=np.float32)
        self.playing = False
        self.muted = False
        self.level = 0.0  # RMS of the last frames, 0..1
        self.loudest = 0.0  # the highest level since the last read of peak levels
        self.frames = 0
        self.errors = 0

    def push(self, packet: av.Packet) -> None:
        try:
            frames = self.decoder.decode(av.Packet(bytes(packet)))
        except av.FFmpegError:
            self.errors += 1
            return
        for frame in frames:
            samples = frame.to_ndarray().astype(np.float32)
            if frame.format.is_planar:
                mono = samples.mean(axis=0)
            else:
                mono = samples.reshape(-1, len(frame.layout.channels)).mean(axis=1)
            if frame.format.name.startswith("s16"):
                mono = mono / 32768.0
            self.buffer = np.concatenate((self.buffer, mono))
            self.frames += 1
        if len(self.buffer) > MAX_BUFFER:
            self.buffer = self.buffer[-MAX_BUFFER:]

    def take(self) -> np.ndarray | None:
        """One 20 ms frame, or None while (re)filling the prefetch."""
        if not self.playing:
            if len(self.buffer) < PREFETCH:
                return None
            self.playing = True
        if len(self.buffer) < FRAME:
            self.playing = False  # ran dry: wait for the prefetch again
            return None
        frame, self.buffer = self.buffer[:FRAME], self.buffer[FRAME:]
        rms = float(np.sqrt(np.mean(frame * frame)))
        self.level = 0.7 * self.level + 0.3 * rms
        self.loudest = max(self.loudest, self.level)
        return frame


def limit(mix: np.ndarray, gain: float) -> tuple[np.ndarray, float]:
    """Scale `mix` so that its peak stays under CEILING. The gain drops at once when
    needed and recovers slowly (about 1 dB a frame), so loud moments are not pumped."""
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    gain = min(1.0, gain * 1.12)
    if peak * gain > CEILING:
        gain = CEILING / peak
    return mix * gain, gain


class Mixer:
    def __init__(
        self, output: Source, *, bitrate: int = 48000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.output = output
        self._clock = clock
        self._inputs: dict[Hashable, _Input] = {}
        self._sources: dict[Hashable, Source] = {}
        encoder = av.CodecContext.create("libopus", "w")
        assert isinstance(encoder, av.AudioCodecContext)
        encoder.sample_rate = RATE
        encoder.layout = "mono"
        encoder.format = "s16"
        encoder.bit_rate = bitrate
        encoder.options = {"application": "voip", "frame_duration": "20"}
        self._encoder = encoder
        self._gain = 1.0
        self._pts = 0
        self._task: asyncio.Task[None] | None = None
        self.frames_out = 0
        self.clipped = 0
        output.attach(lambda: None)

    def add(self, key: Hashable, source: Source) -> None:
        """Mix `source` in, as `key`."""
        self.remove(key)
        entry = _Input()
        self._inputs[key] = entry
        self._sources[key] = source
        source.add_sink((self, key), lambda packet, _keyframe: entry.push(packet))
        if self._task is None:
            self._task = spawn(self._run(), "audio mixer")

    def remove(self, key: Hashable) -> None:
        source = self._sources.pop(key, None)
        if source is not None:
            source.remove_sink((self, key))
        self._inputs.pop(key, None)

    def set_muted(self, key: Hashable, muted: bool) -> None:
        entry = self._inputs.get(key)
        if entry is not None:
            entry.muted = muted

    def peak_levels(self) -> dict[Hashable, float]:
        """Each input's loudest level since the last call, as dBFS (-inf for silence).
        A reader that polls (once a second, say) so still hears a short word or a beep
        that fell between two polls."""
        peaks = {}
        for key, entry in self._inputs.items():
            peaks[key] = 20 * math.log10(entry.loudest) if entry.loudest > 1e-6 else -math.inf
            entry.loudest = 0.0
        return peaks

    @property
    def keys(self) -> list[Hashable]:
        return list(self._inputs)

    async def _run(self) -> None:
        start = self._clock()
        ticks = 0
        while True:
            ticks += 1
            delay = start + ticks * FRAME / RATE - self._clock()
            if delay < -0.2:  # the loop stalled: do not burst to catch up
                start, ticks = self._clock(), 0
            elif delay > 0:
                await asyncio.sleep(delay)
            self.mix_once()

    def mix_once(self) -> None:
        """Mix and encode one 20 ms frame (also called directly by tests)."""
        mix = np.zeros(FRAME, dtype=np.float32)
        for entry in self._inputs.values():
            samples = entry.take()
            if samples is not None and not entry.muted:
                mix += samples
        if float(np.max(np.abs(mix))) > 1.0:
            self.clipped += 1  # before limiting: counted to show the limiter is needed
        mix, self._gain = limit(mix, self._gain)
        pcm = np.clip(mix * 32767, -32768, 32767).astype(np.int16).reshape(1, -1)
        out_frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        out_frame.sample_rate = RATE
        out_frame.pts = self._pts
        self._pts += FRAME
        for packet in self._encoder.encode(out_frame):
            out = av.Packet(bytes(packet))
            out.pts = out.dts = packet.pts
            out.time_base = self.output.time_base
            self.output.push_packet(out, True)
            self.frames_out += 1

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for key in list(self._inputs):
            self.remove(key)
