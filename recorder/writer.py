"""Records encoded video frames and Opus packets to a crash-safe file, as they were
sent: no decoding, no encoding (the container side is in muxer.py).

`write_video()` and `write_audio()` are called on the event loop and only queue the
packet with its arrival time. A writer thread muxes them with PyAV. The queue is
bounded by a count: when the thread or the disk falls behind, packets are dropped
and counted, never waited for. A dropped video frame would break every frame after
it until the next keyframe, so video then skips to the next keyframe (and asks for
one through `on_keyframe_needed`).

The file starts when the first video keyframe has arrived, because its header
needs the picture size; up to `preroll` seconds of audio before it are kept. If no
video comes within `video_wait` seconds, VP8 files start anyway with a nominal size
(decoders read the real one from each keyframe).
"""

import asyncio
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from media.bitstream import H264, VP8, h264_nal_types, is_keyframe, vp8_size
from recorder.muxer import VIDEO_CLOCK, Muxer, h264_size
from recorder.opus import OPUS_RATE
from recorder.timing import StreamClock

logger = logging.getLogger(__name__)

NOMINAL_SIZE = (640, 360)
KEYFRAME_REQUEST_GAP = 1.0

_VIDEO, _AUDIO = 0, 1
# kind, data, timestamp, keyframe, arrival, generation
_Item = tuple[int, bytes, int, bool, float, int]


@dataclass
class WriterStats:
    video_frames: int = 0  # written to the file
    audio_frames: int = 0
    keyframes: int = 0
    dropped: int = 0  # lost to a full queue, or after such a loss until a keyframe
    skipped: int = 0  # before the first keyframe, duplicates, late or out of preroll
    video_size: tuple[int, int] | None = None
    started: bool = False


class PacketWriter:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        video: str | None = VP8,
        audio: bool = True,
        max_queue: int = 1024,
        keyframe_interval: float | None = None,
        on_keyframe_needed: Callable[[], None] | None = None,
        video_wait: float = 10.0,
        preroll: float = 2.0,
        sync_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.fspath(path)
        self._muxer = Muxer(self.path, video, audio)  # ValueError for a wrong extension
        open(self.path, "wb").close()  # an unwritable path fails here, not in the thread
        self._video_codec = video
        self._audio = audio
        self._max_queue = max_queue
        self._keyframe_interval = keyframe_interval
        self._on_keyframe_needed = on_keyframe_needed
        self._video_wait = video_wait
        self._preroll = preroll
        self._sync_interval = sync_interval
        self._clock = clock
        # loop side
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._generation = 0
        self._need_keyframe = True
        self._last_keyframe = clock()
        self._last_request = -KEYFRAME_REQUEST_GAP
        self._dropped = 0
        self._skipped_early = 0
        self._closed = False
        self._close_lock = threading.Lock()
        # writer thread side
        self._stats = WriterStats()
        self._pending: deque[_Item] = deque()
        self._video_clock = StreamClock(VIDEO_CLOCK)
        self._audio_clock = StreamClock(OPUS_RATE)
        self._thread_generation = 0
        self._origin = 0.0
        self._last_sync = 0.0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="packet-writer", daemon=True)
        self._thread.start()

    # -- event loop side -----------------------------------------------------

    def write_video(self, data: bytes, timestamp: int, keyframe: bool | None = None) -> None:
        """Queue one encoded frame (90 kHz timestamp). Never blocks."""
        codec = self._video_codec
        if self._closed or codec is None or self.error is not None:
            return
        if keyframe is None:
            keyframe = is_keyframe(codec, data)
        now = self._clock()
        if keyframe:
            self._last_keyframe = now
        elif self._need_keyframe:
            self._skipped_early += 1
            self._want_keyframe(now)
            return
        elif self._keyframe_interval and now - self._last_keyframe >= self._keyframe_interval:
            if now - self._last_request >= self._keyframe_interval:
                self._want_keyframe(now)
        if self._queue.qsize() >= self._max_queue:
            self._dropped += 1
            self._need_keyframe = True
            self._want_keyframe(now)
            return
        self._queue.put((_VIDEO, data, timestamp, keyframe, now, self._generation))
        self._need_keyframe = False

    def write_audio(self, data: bytes, timestamp: int) -> None:
        """Queue one Opus packet (48 kHz RTP timestamp). Never blocks."""
        if self._closed or not self._audio or self.error is not None:
            return
        if self._queue.qsize() >= self._max_queue:
            self._dropped += 1
            return
        self._queue.put((_AUDIO, data, timestamp, True, self._clock(), self._generation))

    def restart(self) -> None:
        """What follows comes from a new connection: new timestamps, and video must
        start again from a keyframe. The file goes on, after a gap."""
        self._generation += 1
        self._need_keyframe = True

    def _want_keyframe(self, now: float) -> None:
        if self._on_keyframe_needed is None or now - self._last_request < KEYFRAME_REQUEST_GAP:
            return
        self._last_request = now
        try:
            self._on_keyframe_needed()
        except Exception:
            logger.exception("keyframe request failed")

    @property
    def stats(self) -> WriterStats:
        stats = WriterStats(**vars(self._stats))
        stats.dropped += self._dropped
        stats.skipped += self._skipped_early
        return stats

    @property
    def closed_and_done(self) -> bool:
        """Closed, and the file is finished."""
        return self._closed and not self._thread.is_alive()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, finish the file and wait for the writer thread.
        Blocks: from a coroutine, use `aclose()`. Safe to call twice."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        self._thread.join(timeout)

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # -- writer thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                if self.error is None:
                    try:
                        self._handle(item)
                    except Exception as exc:
                        logger.exception("recording to %s failed", self.path)
                        self.error = exc
        finally:
            try:
                if self.error is None and not self._muxer.started and self._pending:
                    self._start(fallback=True)
                self._muxer.close()
                if not self._stats.started and os.path.getsize(self.path) == 0:
                    os.remove(self.path)  # nothing arrived: leave no empty file behind
            except Exception as exc:
                logger.exception("cannot finish the recording %s", self.path)
                self.error = self.error or exc

    def _handle(self, item: _Item) -> None:
        kind, data, _, keyframe, arrival, generation = item
        if generation != self._thread_generation:
            self._thread_generation = generation
            self._video_clock.reset()
            self._audio_clock.reset()
        if self._muxer.started:
            self._write(item)
        elif kind == _AUDIO:
            self._pending.append(item)
            while arrival - self._pending[0][4] > self._preroll:
                self._pending.popleft()
                self._stats.skipped += 1
            if self._video_codec is None or arrival - self._pending[0][4] >= self._video_wait:
                self._start(fallback=True)
        else:
            size = self._starting_size(data) if keyframe else None
            if size is None:
                self._stats.skipped += 1
                return
            self._stats.video_size = size
            self._pending.append(item)
            self._start(fallback=False)

    def _starting_size(self, data: bytes) -> tuple[int, int] | None:
        if self._video_codec == VP8:
            return vp8_size(data)
        if self._video_codec == H264 and {7, 8} <= set(h264_nal_types(data)):
            return h264_size(data)  # the SPS and PPS become the stream's extradata
        return None

    def _start(self, fallback: bool) -> None:
        size = self._stats.video_size
        if fallback and size is None and self._video_codec is not None:
            if self._video_codec == VP8:
                size = NOMINAL_SIZE
                logger.warning("%s: no video yet; the file starts with audio", self.path)
            else:  # an H.264 stream cannot start without its SPS and PPS
                logger.warning("%s: no video arrived; the file has audio only", self.path)
                self._muxer.video_codec = self._video_codec = None
        self._muxer.start(size)
        self._stats.started = True
        self._origin = min(item[4] for item in self._pending)
        self._last_sync = self._origin
        while self._pending:
            self._write(self._pending.popleft())

    def _write(self, item: _Item) -> None:
        kind, data, timestamp, keyframe, arrival, _ = item
        stats = self._stats
        if kind == _VIDEO:
            if self._video_codec is None:
                return
            pts = self._video_clock.map(timestamp, arrival, self._origin)
            if pts is None:
                stats.skipped += 1
                return
            try:
                self._muxer.write_video(data, pts, keyframe)
            except ValueError as exc:
                self._refused(exc)
                return
            stats.video_frames += 1
            if keyframe:
                stats.keyframes += 1
                if self._video_codec == VP8:
                    stats.video_size = vp8_size(data) or stats.video_size
        else:
            pts = self._audio_clock.map(timestamp, arrival, self._origin)
            if pts is None:
                stats.skipped += 1
                return
            try:
                self._muxer.write_audio(data, pts)
            except ValueError as exc:
                self._refused(exc)
                return
            stats.audio_frames += 1
        if arrival - self._last_sync >= self._sync_interval:
            self._last_sync = arrival
            self._muxer.sync()

    def _refused(self, exc: ValueError) -> None:
        # FFmpeg's EINVAL is about this packet, not the file: skip it and go on.
        self._stats.skipped += 1
        logger.warning("%s: packet refused by the muxer: %s", self.path, exc)
