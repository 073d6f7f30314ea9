"""A Python classroom for a rural line, run as its own process inside a namespace:

    ip netns exec NS .venv/bin/python -m tests.netpeer URL --token T --seconds 20 \\
        --out result.json

It joins through the real signalling, receives with the resilient receive path
(media.receiver.ResilientReceiver on video and audio), decodes every frame and
writes what it saw as JSON: each decoded frame's number, arrival time and size,
each audio frame's timestamp and arrival time, the `state` messages the server sent
it (its layer, paused or not) and its receivers' own counters. Times are
time.monotonic(), which is one clock for every process on the machine, so the test
can line them up with the changes it makes to the line.

SIGTERM or SIGINT ends the run early; the JSON is written all the same.

The test side is here too: `NetClassroom` starts and stops such a process,
`Reception` reads what it wrote (order, freezes, audio loss), `LinkSampler`
records what the server says of each classroom's line while it runs, and
`start_teacher` publishes a camera-like numbered stream in the test's own process.
"""

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from tests.conftest import RunningServer
from tests.frames import AUDIO_RATE, NumberedVideoTrack, read_number, tone_present
from tests.netns import Line
from tests.peers import Classroom, Teacher

STATE_POLL = 0.1
TONE_SECONDS = 2.0
AUDIO_FRAME = AUDIO_RATE // 50  # 20 ms of Opus at 48 kHz
FREEZE_GAP = 0.2  # seconds between decoded frames that count as a freeze
PROJECT = Path(__file__).resolve().parent.parent
TEACHER_OPUS_BPS = 32_000


class RecordingClassroom(Classroom):
    """A Classroom that keeps, per frame, what a rural-line test needs."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, token, resilient=True)
        self.frames: list[tuple[int | None, float, int, int]] = []  # number, arrival, w, h
        self.audio_frames: list[tuple[int, float]] = []  # pts (48 kHz), arrival
        self.tail: list[np.ndarray] = []  # the last audio, for the tone check
        self._tail_samples = 0

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                now = time.monotonic()
                number = read_number(frame)
                size = (frame.width, frame.height)
                self.sizes.add(size)
                self.last_size = size
                self.frames.append((number, now, frame.width, frame.height))
                if number is None:
                    self.damaged += 1
                else:
                    self.numbers.append(number)
                    self.arrivals.append((number, now))

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                self.audio_frames.append((int(frame.pts or 0), time.monotonic()))
                data = frame.to_ndarray()
                if data.shape[0] == 1 and frame.layout.nb_channels == 2:
                    data = data.reshape(-1, 2)[:, 0]
                else:
                    data = data[0]
                self.tail.append(data.astype(np.float64))
                self._tail_samples += len(data)
                while self._tail_samples - len(self.tail[0]) >= TONE_SECONDS * AUDIO_RATE:
                    self._tail_samples -= len(self.tail.pop(0))


def receiver_counters(classroom: Classroom) -> dict[str, dict[str, int]]:
    counters = {}
    for kind, receiver in classroom.receivers.items():
        buffer = receiver.buffer
        counters[kind] = {
            "nacks_sent": receiver.nacks_sent,
            "frames_out": buffer.frames_out,
            "frames_skipped": buffer.frames_skipped,
            "gaps_given_up": buffer.gaps_given_up,
        }
    return counters


async def inbound_stats(classroom: Classroom) -> dict[str, dict[str, Any]]:
    """aiortc's own inbound-rtp figures, per kind."""
    found: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(Exception):
        report = await classroom.pc.getStats()
        for stats in report.values():
            if getattr(stats, "type", None) == "inbound-rtp":
                found[str(stats.kind)] = {
                    "packets_received": stats.packetsReceived,
                    "packets_lost": stats.packetsLost,
                    "jitter": stats.jitter,
                }
    return found


async def run(url: str, token: str, seconds: float, out: Path, tone: float) -> int:
    classroom = RecordingClassroom(url, token)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    started = time.monotonic()
    result: dict[str, Any] = {"started_at": started, "url": url, "error": None}
    states: list[tuple[float, dict[str, Any]]] = []
    seen = 0
    try:
        await classroom.join()
        result["joined_at"] = time.monotonic()
        await classroom.subscribe()
        deadline = started + seconds
        while time.monotonic() < deadline and not stop.is_set():
            if "connected_at" not in result and classroom.pc.connectionState == "connected":
                result["connected_at"] = time.monotonic()
            messages = classroom.signalling.messages
            now = time.monotonic()
            for message in messages[seen:]:
                if message.get("type") == "state":
                    states.append((now, message.get("video") or {}))
            seen = len(messages)
            if classroom.signalling.closed:
                result["error"] = "the signalling socket closed"
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATE_POLL)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        result["ended_at"] = time.monotonic()
        result["connection_state"] = classroom.pc.connectionState
        result["inbound"] = await inbound_stats(classroom)
        result["receivers"] = receiver_counters(classroom)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(classroom.close(), 10)
    tail = np.concatenate(classroom.tail) if classroom.tail else np.zeros(0)
    result.update(
        frames=classroom.frames,
        damaged=classroom.damaged,
        audio=classroom.audio_frames,
        tone_present=bool(len(tail) >= AUDIO_RATE and tone_present(tail, AUDIO_RATE, tone)),
        states=states,
    )
    await asyncio.to_thread(out.write_text, json.dumps(result))
    return 0 if result["error"] is None else 1


# -- the test side ------------------------------------------------------------


class TexturedVideoTrack(NumberedVideoTrack):
    """Numbered frames under a fresh, faint noise each frame, so that VP8 spends
    what a camera's picture costs (the flat blocks alone cost a few hundred kbps at
    most). The noise (±12 grey levels) leaves the numbers readable."""

    NOISE = 12
    FIELDS = 8

    def __init__(self, width: int = 640, height: int = 360, fps: int = 30) -> None:
        super().__init__(width, height, fps)
        generator = np.random.default_rng(3)
        self._fields = [
            generator.integers(-self.NOISE, self.NOISE + 1, (height, width, 3), dtype=np.int16)
            for _ in range(self.FIELDS)
        ]

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        image = frame.to_ndarray(format="rgb24").astype(np.int16)
        image += self._fields[self.sent % self.FIELDS]
        textured = av.VideoFrame.from_ndarray(
            np.clip(image, 0, 255).astype(np.uint8), format="rgb24"
        )
        textured.pts, textured.time_base = frame.pts, frame.time_base
        return textured


@contextlib.contextmanager
def opus_bitrate(bps: int) -> Iterator[None]:
    """While inside, aiortc's Opus encoders are made for `bps` instead of aiortc's
    fixed 96 kbps stereo, which is three times what a browser sends for a voice."""
    original = OpusEncoder.__init__

    def init(self: OpusEncoder) -> None:
        original(self)
        self.codec.bit_rate = bps

    OpusEncoder.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        OpusEncoder.__init__ = original  # type: ignore[method-assign]


async def start_teacher(
    server: RunningServer, lesson: str, *, opus_bps: int = TEACHER_OPUS_BPS, timeout: float = 15.0
) -> Teacher:
    """A teacher publishing textured numbered frames and a 440 Hz tone with Opus at
    `opus_bps` (a browser's voice rate), once the lesson is live and its camera has
    a size."""
    teacher = Teacher(server.url, server.token(lesson, "teacher"))
    teacher.video = TexturedVideoTrack(640, 360)
    try:
        # The sender makes its encoder when media starts, before the lesson is live.
        with opus_bitrate(opus_bps):
            await teacher.join()
            await teacher.publish()
            deadline = time.monotonic() + timeout
            while True:
                live = server.lessons.get(lesson)
                if live is not None and live.live and live.source_for("video").size:
                    return teacher
                if time.monotonic() > deadline:
                    raise TimeoutError("the teacher did not go live")
                await asyncio.sleep(0.1)
    except BaseException:
        await teacher.close()
        raise


@dataclass
class Reception:
    """What one classroom process received, read from its JSON."""

    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> "Reception":
        return cls(json.loads(path.read_text()))

    @property
    def error(self) -> str | None:
        error: str | None = self.data.get("error")
        return error

    @property
    def frames(self) -> list[tuple[int | None, float, int, int]]:
        return [(f[0], f[1], f[2], f[3]) for f in self.data["frames"]]

    @property
    def numbers(self) -> list[int]:
        return [f[0] for f in self.frames if f[0] is not None]

    def frames_between(self, start: float, end: float) -> list[tuple[int | None, float, int, int]]:
        return [f for f in self.frames if start <= f[1] < end]

    def in_order(self) -> bool:
        """No decoded number is lower than the one before. (A number may repeat once at
        a switch to a lower layer: that layer's first keyframe is a new coding of the
        picture the classroom saw last.)"""
        numbers = self.numbers
        return all(b >= a for a, b in itertools.pairwise(numbers))

    def repeats(self) -> int:
        numbers = self.numbers
        return sum(1 for a, b in itertools.pairwise(numbers) if a == b)

    def first_frame_at(self) -> float | None:
        frames = self.frames
        return frames[0][1] if frames else None

    def freezes(
        self, start: float, end: float, gap: float = FREEZE_GAP
    ) -> list[tuple[float, float]]:
        """(start, length) of each pause over `gap` between decoded frames in
        [start, end]; the run's edges count as frames, so that video that stops for
        good counts as a freeze up to `end`."""
        times = [start, *(f[1] for f in self.frames if start < f[1] < end), end]
        return [(a, b - a) for a, b in itertools.pairwise(times) if b - a > gap]

    def freeze_seconds(self, start: float, end: float, gap: float = FREEZE_GAP) -> float:
        return sum(length for _, length in self.freezes(start, end, gap))

    def audio_timeline(self) -> Callable[[int], float]:
        """Maps an audio frame's pts to when it would have arrived without delay
        (the earliest arrival, less its pts offset)."""
        audio = self.data["audio"]
        offset = min(t - pts / AUDIO_RATE for pts, t in audio) if audio else 0.0
        return lambda pts: offset + pts / AUDIO_RATE

    def audio_frames(self, start: float | None = None, end: float | None = None) -> tuple[int, int]:
        """(audio frames sent in [start, end], frames of those received), by
        timestamp, so that late frames count as received and missing ones as lost.
        Without bounds: from the first received frame to the end of the run."""
        audio = self.data["audio"]
        if not audio:
            return 0, 0
        at = self.audio_timeline()
        first_pts = min(pts for pts, _ in audio)
        t0 = at(first_pts) if start is None else start
        t1 = self.data["ended_at"] - 0.5 if end is None else end
        if t1 <= t0:
            return 0, 0
        received = {pts for pts, _ in audio if t0 <= at(pts) < t1}
        expected = round((t1 - t0) * AUDIO_RATE / AUDIO_FRAME)
        return expected, min(len(received), expected)

    def layer_sizes(self) -> list[tuple[float, tuple[int, int]]]:
        """(time, size) each time the decoded size changed."""
        changes: list[tuple[float, tuple[int, int]]] = []
        for _, t, w, h in self.frames:
            if not changes or changes[-1][1] != (w, h):
                changes.append((t, (w, h)))
        return changes


class NetClassroom:
    """A tests.netpeer process inside a line's namespace."""

    def __init__(
        self, line: Line, url: str, token: str, seconds: float, workdir: Path, name: str = ""
    ) -> None:
        self.line = line
        self.url = url
        self.token = token
        self.seconds = seconds
        self.name = name or line.namespace
        self.out = workdir / f"{self.name}.json"
        self.log = workdir / f"{self.name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        command = [
            *self.line.exec_prefix(),
            sys.executable,
            "-m",
            "tests.netpeer",
            self.url,
            "--token",
            self.token,
            "--seconds",
            str(self.seconds),
            "--out",
            str(self.out),
        ]
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, cwd=PROJECT, stdout=log, stderr=asyncio.subprocess.STDOUT
            )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def result(self, grace: float = 30.0) -> Reception:
        """Wait for the run to end (its seconds plus `grace`), then read its JSON."""
        assert self.process is not None, "start() first"
        try:
            await asyncio.wait_for(self.process.wait(), self.seconds + grace)
        except TimeoutError:
            await self.stop()
        if not self.out.exists():
            raise AssertionError(f"{self.name} wrote no result; its log:\n{self.log_tail()}")
        return Reception.load(self.out)

    async def stop(self) -> None:
        """End the process: SIGTERM (it still writes its JSON), then SIGKILL."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@dataclass
class LinkSample:
    at: float
    classrooms: dict[str, dict[str, Any]]  # by name: the server's link stats
    delivered: dict[str, int]  # by line namespace: bytes carried so far
    capacity: dict[str, int]  # by line namespace: the line's rate now


@dataclass
class LinkSampler:
    """Samples the server's link stats of a lesson, and the lines, every `every` s."""

    link_stats: Callable[[], dict[str, Any] | None]
    lines: list[Line]
    every: float = 0.25
    samples: list[LinkSample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    def sample(self) -> None:
        stats = self.link_stats()
        rooms = {room["name"]: room for room in (stats or {}).get("classrooms", [])}
        self.samples.append(
            LinkSample(
                time.monotonic(),
                rooms,
                {line.namespace: line.delivered_bytes() for line in self.lines},
                {line.namespace: line.rate_bps for line in self.lines},
            )
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def layers(self, name: str) -> list[tuple[float, str | None]]:
        """(time, layer) each time the layer the server sends `name` changed."""
        changes: list[tuple[float, str | None]] = []
        for sample in self.samples:
            room = sample.classrooms.get(name)
            if room is None or "layer" not in room:
                continue
            if not changes or changes[-1][1] != room["layer"]:
                changes.append((sample.at, room["layer"]))
        return changes

    def layer_at(self, name: str, at: float) -> str | None:
        changes = self.layers(name)
        index = bisect.bisect_right([t for t, _ in changes], at) - 1
        return changes[index][1] if index >= 0 else None

    def time_on(self, name: str, layers: set[str | None], start: float, end: float) -> float:
        """Seconds in [start, end] that `name` spent on one of `layers`."""
        changes = self.layers(name)
        total = 0.0
        for (t, layer), following in itertools.zip_longest(changes, changes[1:]):
            until = following[0] if following is not None else end
            a, b = max(t, start), min(until, end)
            if b > a and layer in layers:
                total += b - a
        return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the server, e.g. http://10.201.1.1:8080")
    parser.add_argument("--token", required=True, help="a classroom join token")
    parser.add_argument("--seconds", type=float, required=True, help="how long to receive")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--tone", type=float, default=440.0, help="the teacher's tone, Hz")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.url, args.token, args.seconds, args.out, args.tone))


if __name__ == "__main__":
    sys.exit(main())
