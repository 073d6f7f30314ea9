"""Recording a live lesson: one more subscriber of its sources.

The recorder writes the packets it receives, as they were sent, into the lesson's
archive (no decoding, no encoding; the writing happens in the writer's thread).
It asks the camera for a keyframe every `keyframe_interval` seconds, through the
same coalescing as every other keyframe request, so that the archive can be seeked
and cut into segments. A new segment starts when the camera's publisher reconnects
or its picture size changes.
"""

import logging
import threading
from collections.abc import Hashable

import av

from media.bitstream import VP8, vp8_size
from media.source import Source
from recorder.archive import Archive, Segment
from recorder.writer import PacketWriter

logger = logging.getLogger(__name__)


class LessonRecording:
    def __init__(
        self,
        archive: Archive,
        video: Source | None,
        audio: Source | None,
        *,
        keyframe_interval: float = 10.0,
    ) -> None:
        self.archive = archive
        self.video = video
        self.audio = audio
        self._keyframe_interval = keyframe_interval
        self._writer: PacketWriter | None = None
        self._segment: Segment | None = None
        self._generation: int | None = None
        self._size: tuple[int, int] | None = None
        self._first_reason = (
            "restart"
            if archive.interrupted
            else ("resume" if archive.manifest.segments else "start")
        )
        self._closing: list[PacketWriter] = []
        self._stage: tuple[Source, PacketWriter, Segment] | None = None
        self.segments_written = 0
        self.closed = False
        owner: Hashable = self
        if video is not None:
            video.add_sink(owner, self._on_video)
        if audio is not None:
            audio.add_sink(owner, self._on_audio)

    @property
    def queued(self) -> int:
        """Packets waiting for the writers' threads, of every open file."""
        writers = [self._writer, *self._closing]
        if self._stage is not None:
            writers.append(self._stage[1])
        return sum(writer.queued for writer in writers if writer is not None)

    @property
    def video_codec(self) -> str | None:
        return self.video.codec if self.video is not None else None

    def _open(self, reason: str) -> PacketWriter:
        self._rotate()
        segment = self.archive.new_segment(reason, self.video_codec)
        video = self.video
        writer = PacketWriter(
            self.archive.directory / segment.file,
            video=self.video_codec,
            audio=self.audio is not None,
            keyframe_interval=self._keyframe_interval,
            on_keyframe_needed=video.request_keyframe if video is not None else None,
        )
        self._segment, self._writer = segment, writer
        self.segments_written += 1
        logger.info(
            "lesson=%s recording %s (%s)", self.archive.manifest.lesson, segment.file, reason
        )
        return writer

    def _rotate(self) -> None:
        """Finish the current segment, off the event loop."""
        writer, segment = self._writer, self._segment
        self._writer = self._segment = None
        if writer is not None and segment is not None:
            self.archive.end_segment(segment, writer.stats.video_size or self._size)
            self._closing = [w for w in self._closing if not w.closed_and_done]
            self._closing.append(writer)
            threading.Thread(target=writer.close, name="segment-close", daemon=True).start()

    def _on_video(self, packet: av.Packet, keyframe: bool) -> None:
        if self.closed:
            return
        assert self.video is not None
        data = bytes(packet)
        writer = self._writer
        if writer is None:
            writer = self._open(self._first_reason)
            self._first_reason = "reconnect"
            self._generation = self.video.generation
        elif self.video.generation != self._generation:
            self._generation = self.video.generation
            writer = self._open("reconnect")
        if keyframe and self.video.codec == VP8:
            size = vp8_size(data)
            if size is not None:
                if self._size is not None and size != self._size and writer.stats.started:
                    writer = self._open("resolution")
                self._size = size
        writer.write_video(data, packet.pts or 0, keyframe)

    def _on_audio(self, packet: av.Packet, keyframe: bool) -> None:
        if self.closed:
            return
        writer = self._writer
        if writer is None:
            if self.video is not None:
                return  # the segment starts with video; the writer keeps audio preroll itself
            writer = self._open(self._first_reason)
        writer.write_audio(bytes(packet), packet.pts or 0)

    def set_stage(self, source: Source | None, seat: str = "") -> None:
        """Record the audio of the classroom on stage (`source`), in a file of its own;
        None ends it."""
        if self._stage is not None:
            old_source, writer, segment = self._stage
            old_source.remove_sink((self, "stage"))
            self._stage = None
            self.archive.end_segment(segment, None)
            self._closing.append(writer)
            threading.Thread(target=writer.close, name="stage-close", daemon=True).start()
        if source is None or self.closed:
            return
        segment = self.archive.new_stage_file(seat or source.name)
        writer = PacketWriter(self.archive.directory / segment.file, video=None, audio=True)
        self._stage = (source, writer, segment)
        source.add_sink(
            (self, "stage"), lambda packet, _key: writer.write_audio(bytes(packet), packet.pts or 0)
        )

    def close(self, finish: bool = True) -> None:
        """Stop recording and finalize every file (blocks until written: call from a
        thread or at shutdown). With `finish`, the archive is marked finished."""
        if self.closed:
            return
        self.closed = True
        for source in (self.video, self.audio):
            if source is not None:
                source.remove_sink(self)
        self.set_stage(None)
        writer, segment = self._writer, self._segment
        self._writer = self._segment = None
        if writer is not None and segment is not None:
            writer.close()
            self.archive.end_segment(segment, writer.stats.video_size or self._size)
        for old in self._closing:
            old.close()
        self._closing.clear()
        if finish:
            self.archive.finish()
