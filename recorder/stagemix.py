"""The audio of classrooms brought on stage, mixed into a rendition's soundtrack.

Each time a classroom is on stage its audio goes into a file of its own
(stage-NNNN.mka, recorder/recording.py), whose start the manifest keeps as a wall
clock time, like every segment's. A rendition places a stage file on its output
timeline from the main segment during which it started: where `read_timeline`
put that segment, plus the seconds between the two starts. Each file's time zero is
its first packet, which comes within a packet time of its start, and a segment's
is its first frame: the placing is good to a few tens of milliseconds.

Files are decoded only as the soundtrack reaches them, so a long time on stage
costs no memory. The mix is a sum; a frame whose sum would clip is scaled down.
"""

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from recorder.archive import Segment
from recorder.reader import SegmentInfo

logger = logging.getLogger(__name__)

RATE = 48000
CHANNELS = 2


@dataclass(frozen=True)
class StageFile:
    path: Path
    segment: int  # index, in the rendition's segments, of the one it started during
    after: float  # seconds after that segment's start


def plan(
    directory: Path, segments: list[Segment], stage: list[Segment], readable: list[SegmentInfo]
) -> list[StageFile]:
    """Where each stage file goes: the last readable main segment that started before
    it (or the first one)."""
    index_of = {info.path.name: i for i, info in enumerate(readable)}
    starts = [(seg.started, index_of[seg.file]) for seg in segments if seg.file in index_of]
    if not starts:
        return []
    placed = []
    for entry in stage:
        path = directory / entry.file
        if not path.exists():
            continue
        before = [(started, i) for started, i in starts if started <= entry.started]
        started, index = before[-1] if before else starts[0]
        placed.append(StageFile(path, index, max(0.0, entry.started - started)))
    return placed


class _Decoded:
    """One stage file's samples, decoded as they are asked for, file-relative."""

    def __init__(self, path: Path) -> None:
        self._frames = self._read(path)
        self._buffer = np.zeros((CHANNELS, 0), dtype=np.float32)
        self._start = 0  # file sample of the buffer's first column
        self._done = False

    @staticmethod
    def _read(path: Path) -> Iterator[tuple[int, np.ndarray]]:
        try:
            container = av.open(os.fspath(path))
        except (av.FFmpegError, OSError):
            logger.warning("%s: cannot be read; its stage audio is left out", path)
            return
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
        with container:
            if not container.streams.audio:
                return
            stream = container.streams.audio[0]
            try:
                for packet in container.demux(stream):
                    try:
                        frames = packet.decode()
                    except av.FFmpegError:
                        continue
                    for frame in frames:
                        if not isinstance(frame, av.AudioFrame) or frame.time is None:
                            continue
                        position = round(frame.time * RATE)
                        for converted in resampler.resample(frame):
                            data = converted.to_ndarray().reshape(CHANNELS, -1)
                            yield position, data.astype(np.float32, copy=False)
                            position += data.shape[1]
            except av.FFmpegError as exc:  # a torn end: what came before is kept
                logger.info("%s: read up to a damaged end (%s)", path, exc)

    def take(self, start: int, length: int) -> np.ndarray | None:
        """Samples [start, start + length) of the file (zeros where it has none), or
        None once it is over."""
        end = start + length
        while not self._done and self._start + self._buffer.shape[1] < end:
            try:
                position, data = next(self._frames)
            except StopIteration:
                self._done = True
                break
            buffered_end = self._start + self._buffer.shape[1]
            if position > buffered_end:  # a hole: silence
                gap = np.zeros((CHANNELS, position - buffered_end), dtype=np.float32)
                self._buffer = np.concatenate([self._buffer, gap], axis=1)
            elif position < buffered_end:  # an overlap: cut
                data = data[:, buffered_end - position :]
            self._buffer = np.concatenate([self._buffer, data], axis=1)
        if self._done and start >= self._start + self._buffer.shape[1]:
            return None
        out = np.zeros((CHANNELS, length), dtype=np.float32)
        lo, hi = max(start, self._start), min(end, self._start + self._buffer.shape[1])
        if hi > lo:
            out[:, lo - start : hi - start] = self._buffer[:, lo - self._start : hi - self._start]
        drop = max(0, start - self._start)  # nothing before `start` is asked again
        if drop:
            self._buffer = self._buffer[:, drop:]
            self._start += drop
        return out


class StageMix:
    """Called with each soundtrack frame (its first sample, its data); returns it
    with the stage audio that falls in it added. `joins` is the reader's list of
    where segments meet in the output, which grows as it reads."""

    def __init__(self, files: list[StageFile], joins: list[float]) -> None:
        self._pending = sorted(files, key=lambda f: (f.segment, f.after))
        self._joins = joins
        self._playing: list[tuple[int, _Decoded]] = []  # (output sample of its start, file)
        self.mixed_samples = 0

    def _start_of(self, file: StageFile) -> int | None:
        if file.segment == 0:
            offset = 0.0
        elif file.segment - 1 < len(self._joins):
            offset = self._joins[file.segment - 1]
        else:
            return None  # that segment is not read yet: it comes later
        return round((offset + file.after) * RATE)

    def __call__(self, start: int, data: np.ndarray) -> np.ndarray:
        end = start + data.shape[1]
        while self._pending:
            begins = self._start_of(self._pending[0])
            if begins is None or begins >= end:
                break
            self._playing.append((begins, _Decoded(self._pending.pop(0).path)))
        if not self._playing:
            return data
        mixed = data.copy()
        still = []
        for begins, decoded in self._playing:
            offset = start - begins
            if offset < 0:  # starts inside this frame
                part = decoded.take(0, end - begins)
                if part is not None:
                    mixed[:, -offset:] += part
            else:
                part = decoded.take(offset, data.shape[1])
                if part is not None:
                    mixed += part
            if part is not None:
                self.mixed_samples += part.shape[1]
                still.append((begins, decoded))
        self._playing = still
        peak = float(np.max(np.abs(mixed))) if mixed.size else 0.0
        if peak > 1.0:
            mixed /= peak
        return mixed
