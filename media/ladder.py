"""The ladder: the source's own stream on top, lower renditions encoded once each.

The top source is decoded once, in one worker thread, and each lower layer is scaled
and encoded once for all of its subscribers. Each layer is a Source of its own, so a
subscriber switches layers the same way it would switch sources. A layer nobody
receives is not encoded. PyAV releases the GIL while decoding, scaling and
encoding, so this work runs beside the event loop.

The top is decoded from its first keyframe on, whether or not a lower layer is
wanted (about 1.3 ms a 720p frame: 4 % of a core). A subscriber whose line falls
then gets the lower layer's keyframe from its encoder at once. Starting the decoder
only when a lower layer was wanted meant asking the publisher for a keyframe first:
on a step from 2.5 Mbit/s to 600 kbit/s the picture froze 0.2 s longer, and the
keyframe went to every other subscriber of the top layer too.

Encoding stays real time: when the worker falls behind, it decodes every frame (the
decoder needs them all) but encodes only the newest.
"""

import asyncio
import functools
import logging
import queue
import threading
from dataclasses import dataclass

import av

from media.encoder import LayerEncoder
from media.source import Source

logger = logging.getLogger(__name__)

QUEUE_FRAMES = 30


@dataclass(frozen=True)
class LayerSpec:
    name: str
    height: int
    bitrate: int
    fps: float


# 360p at 450 kbit/s came to 560-630 kbit/s on the wire with the voice and the
# packet headers, and queued on a 600 kbit/s line (RFC 8867's 0.6 Mbit/s phase):
# at 400 kbit/s it fits that line with some room.
DEFAULT_LAYERS = (
    LayerSpec("360p", 360, 400_000, 30),
    LayerSpec("180p", 180, 150_000, 15),
)


class Ladder:
    def __init__(
        self,
        top: Source,
        specs: tuple[LayerSpec, ...] = DEFAULT_LAYERS,
        *,
        keyframe_min_interval: float = 0.5,
        queue_frames: int = 30,
    ) -> None:
        self.top = top
        self.specs = specs
        self.layers: list[Source] = [top]
        self._encoders: list[LayerEncoder] = []
        self._force = [False] * len(specs)
        for index, spec in enumerate(specs):
            layer = Source(
                f"{top.name}/{spec.name}",
                "video",
                top.codec,
                top.clock_rate,
                keyframe_min_interval=keyframe_min_interval,
                keyframe_cache_seconds=0,
                queue_frames=queue_frames,
            )
            layer.timeline = top.timeline
            layer.cheap_keyframes = True
            layer.attach(functools.partial(self._request_keyframe, index))
            self.layers.append(layer)
            self._encoders.append(LayerEncoder(top.codec, spec.height, spec.bitrate, spec.fps))
        self._last_pts = [-(10**12)] * len(specs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: queue.Queue[tuple[av.Packet, bool, tuple[bool, ...]] | None] = queue.Queue(
            QUEUE_FRAMES
        )
        self._thread: threading.Thread | None = None
        self._decoding = False
        self._closed = False
        self.decoded = 0
        self.skipped = 0
        self.resyncs = 0
        top.add_sink(self, self._on_top_frame)

    def rate(self, index: int) -> float:
        """Nominal bits per second of layer `index` (0 is the top)."""
        if index == 0:
            return max(self.top.rate.bps(), 300_000.0)
        return float(self.specs[index - 1].bitrate)

    @property
    def queued(self) -> int:
        """Frames of the top layer waiting for the encoding thread."""
        return self._queue.qsize()

    @property
    def names(self) -> list[str]:
        return ["top", *(spec.name for spec in self.specs)]

    def _request_keyframe(self, index: int) -> None:
        self._force[index] = True

    def _on_top_frame(self, packet: av.Packet, keyframe: bool) -> None:
        wanted = tuple(layer.sink_count > 0 for layer in self.layers[1:])
        if not self._decoding:
            if not keyframe:
                if any(wanted):  # else the publisher's next keyframe will do
                    self.top.request_keyframe()
                return
            self._decoding = True
            self._start()
        try:
            self._queue.put_nowait((packet, keyframe, wanted))
        except queue.Full:
            # The decoder is hopelessly behind: start again from the next keyframe.
            self.resyncs += 1
            self._drain()
            self._decoding = False
            self.top.request_keyframe()

    def _start(self) -> None:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._work, name="ladder", daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _work(self) -> None:
        decoder = av.CodecContext.create(self.top.codec, "r")
        assert isinstance(decoder, av.VideoCodecContext)
        decoder.thread_count = 1
        need_keyframe = True
        while True:
            item = self._queue.get()
            if item is None:
                return
            packet, keyframe, wanted = item
            if need_keyframe and not keyframe:
                continue
            try:
                frames = decoder.decode(packet)
            except av.FFmpegError as exc:
                logger.warning("%s: cannot decode a frame: %s", self.top.name, exc)
                need_keyframe = True
                self._post_keyframe_request()
                continue
            need_keyframe = False
            for frame in frames:
                self.decoded += 1
                if not self._queue.empty():
                    self.skipped += 1  # behind: encode only the newest frame
                    continue
                self._encode(frame, wanted, packet.pts or 0)

    def _encode(self, frame: av.VideoFrame, wanted: tuple[bool, ...], pts: int) -> None:
        for index, encoder in enumerate(self._encoders):
            if not wanted[index]:
                self._last_pts[index] = -(10**12)
                continue
            force = self._force[index]
            interval = 90000 / encoder.fps
            if not force and pts - self._last_pts[index] < interval * 0.8:
                continue  # frame-rate decimation
            self._force[index] = False
            frame.pts = pts
            for data, is_key in encoder.encode(frame, force):
                out = av.Packet(data)
                out.pts = out.dts = pts
                out.time_base = self.top.time_base
                self._deliver(index + 1, out, is_key)
            self._last_pts[index] = pts

    def _deliver(self, layer: int, packet: av.Packet, keyframe: bool) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        try:
            loop.call_soon_threadsafe(self._push, layer, packet, keyframe)
        except RuntimeError:  # the loop closed
            pass

    def _push(self, layer: int, packet: av.Packet, keyframe: bool) -> None:
        if not self._closed:
            self.layers[layer].push_packet(packet, keyframe)

    def _post_keyframe_request(self) -> None:
        loop = self._loop
        if loop is not None and not self._closed:
            try:
                loop.call_soon_threadsafe(self.top.request_keyframe)
            except RuntimeError:
                pass

    def layer_size(self, index: int) -> tuple[int, int] | None:
        if index == 0:
            return self.top.size
        return self._encoders[index - 1].size

    def close(self) -> None:
        self._closed = True
        self.top.remove_sink(self)
        for layer in self.layers[1:]:
            layer.close()
        if self._thread is not None:
            self._drain()
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None
