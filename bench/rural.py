"""Rural benchmark: RFC 8867 test 5.1 (variable capacity, one flow) for a classroom.

The line's capacity goes 1 → 2.5 → 0.6 → 1 Mbps over 100 s (steps at 40, 60 and 80
s), shaped with tbf (300 ms queue, as RFC 8867 asks) on a veth into the classroom's
own network namespace. The teacher publishes over loopback in this process (numbered
640x360 frames under a faint noise, so that the top layer costs what a camera's does,
and a 32 kbps Opus tone); the server runs in this process too. The classroom is the
Python client with its resilient receivers (tests/netpeer.py), or Chromium with
--browser. Needs root (network namespaces).

    .venv/bin/python -m bench.rural --out var/bench/rural > rural.json

JSON on stdout (and in OUT/rural.json): the schedule; per drop, the time to settle
under the new capacity and to the first switch down; per rise, the time to climb
to the best layer that fits; freeze time (the sum of gaps over 200 ms between
decoded frames) and its share of the run; audio frames lost; keyframe requests that
reached the teacher. A PNG (OUT/rural.png) plots capacity, the server's estimate,
and the offered and delivered bitrates, sampled every 0.5 s. docs/benchmarks.md
explains every figure.
"""

import sys
from pathlib import Path

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import tempfile
import time
import weakref
from collections.abc import Iterator
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport

from bench.capacity import (
    Sample,
    Schedule,
)
from bench.procstat import load_average
from bench.ruralreport import (
    SAMPLE_EVERY,
    TARGETS,
    analyse,
    browser_figures,
    python_figures,
    reanalyse,
)
from media import adapter
from server.lesson import Lesson
from server.peer import Peer
from tests.browser import open_page, wait_for_state
from tests.conftest import RunningServer
from tests.netns import Line, Lines, chromium_on, serve_on_lines, unavailable, url_on
from tests.netpeer import NetClassroom, start_teacher

RFC8867_5_1 = "0:1M,40:2.5M,60:600k,80:1M"
DURATION = 100.0
LESSON = "rural-bench"
# SRTP tag, UDP, IPv4 and Ethernet headers: what a packet costs the line beyond RTP
PACKET_OVERHEAD = 10 + 8 + 20 + 14
BROWSER_STATS = """
async () => {
  const pcs = (window.__pcs || []).filter((pc) => pc.connectionState !== "closed");
  const pc = pcs[pcs.length - 1];
  if (!pc) return null;
  const out = {};
  for (const r of (await pc.getStats()).values()) {
    if (r.type === "inbound-rtp") {
      out[r.kind] = {
        packetsReceived: r.packetsReceived ?? 0, packetsLost: r.packetsLost ?? 0,
        framesDecoded: r.framesDecoded ?? 0, frameHeight: r.frameHeight ?? 0,
        freezeCount: r.freezeCount ?? 0, totalFreezesDuration: r.totalFreezesDuration ?? 0,
        concealedSamples: r.concealedSamples ?? 0,
        totalSamplesReceived: r.totalSamplesReceived ?? 0,
      };
    }
  }
  return out;
}
"""


class RtpBytes:
    """Counts the RTP bytes (retransmissions included) each DTLS transport sends.

    A measuring hook of this benchmark only: aiortc counts a sender's original
    packets but not its retransmissions, and on a congested line those matter."""

    def __init__(self) -> None:
        self.sent: weakref.WeakKeyDictionary[RTCDtlsTransport, list[int]] = (
            weakref.WeakKeyDictionary()
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original = RTCDtlsTransport._send_rtp
        counts = self.sent

        async def send_rtp(transport: RTCDtlsTransport, data: bytes) -> None:
            entry = counts.setdefault(transport, [0, 0])
            entry[0] += 1
            entry[1] += len(data)
            await original(transport, data)

        # the fast path (media/fastsender.py) sends without _send_rtp: count what it
        # protects (each packet it sends, retransmissions too, is protected once)
        original_route = adapter.SenderWiring._new_route

        def new_route(wiring: adapter.SenderWiring) -> adapter.Route | None:
            route = original_route(wiring)
            if route is None:
                return None
            entry = counts.setdefault(wiring.dtls, [0, 0])
            protect = route.protect

            def counted(data: bytes) -> bytes:
                protected = protect(data)
                entry[0] += 1
                entry[1] += len(protected)
                return protected

            return route._replace(protect=counted)

        RTCDtlsTransport._send_rtp = send_rtp  # type: ignore[method-assign, assignment]
        adapter.SenderWiring._new_route = new_route  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            RTCDtlsTransport._send_rtp = original  # type: ignore[method-assign]
            adapter.SenderWiring._new_route = original_route  # type: ignore[method-assign]

    def line_bytes(self, peer: Peer | None) -> int:
        """Bytes put on the wire for `peer` so far, with per-packet overheads."""
        if peer is None or peer.pc is None:
            return 0
        for transceiver in peer.pc.getTransceivers():
            transport = transceiver.sender.transport
            if transport is not None and transport in self.sent:
                packets, octets = self.sent[transport]
                return octets + packets * PACKET_OVERHEAD
        return 0


class Decisions(logging.Handler):
    """The server's layer decisions, with their reasons, as media.downlink logs
    them, in seconds from the profile's start (`mark_start`)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.wall_start = time.time()
        self.seen: list[tuple[float, str]] = []

    def mark_start(self) -> None:
        self.wall_start = time.time()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((round(record.created - self.wall_start, 2), record.getMessage()))

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        logger = logging.getLogger("media.downlink")
        level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        try:
            yield
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)


def classroom_peer(lesson: Lesson | None, name: str) -> Peer | None:
    if lesson is None:
        return None
    for peer in lesson.peers.values():
        if peer.role == "classroom" and peer.name == name:
            return peer
    return None


class Sampler:
    """Every SAMPLE_EVERY seconds: each line's capacity, offered and delivered
    bitrate, and what the server says and does for its classroom."""

    def __init__(self, server: RunningServer, rooms: dict[str, Line], counter: RtpBytes) -> None:
        self.server = server
        self.rooms = rooms
        self.counter = counter
        self.samples: dict[str, list[Sample]] = {name: [] for name in rooms}
        self.start = 0.0
        self._last: dict[str, tuple[float, int, int]] = {}

    def sample(self, now: float) -> None:
        lesson = self.server.lessons.get(LESSON)
        camera = lesson.source_for("video") if lesson is not None else None
        microphone = lesson.source_for("audio") if lesson is not None else None
        requests = camera.keyframe_requests if camera is not None else (0, 0)
        for name, line in self.rooms.items():
            peer = classroom_peer(lesson, name)
            offered, delivered = self.counter.line_bytes(peer), line.delivered_bytes()
            last = self._last.get(name)
            self._last[name] = (now, offered, delivered)
            if last is None or lesson is None:
                continue
            elapsed = now - last[0]
            stats = peer.link_stats() if peer is not None else {}
            ladder = lesson.ladder()
            layer = stats.get("layer")
            self.samples[name].append(
                Sample(
                    t=round(now - self.start, 3),
                    capacity_bps=line.rate_bps,
                    offered_bps=max(0, offered - last[1]) * 8 / elapsed,
                    delivered_bps=max(0, delivered - last[2]) * 8 / elapsed,
                    estimate_bps=stats.get("estimate_bps"),
                    remb_bps=stats.get("remb_bps"),
                    loss=stats.get("loss", 0.0),
                    layer=layer,
                    layer_index=ladder.names.index(layer) if layer in ladder.names else None,
                    layer_rates=[ladder.rate(i) for i in range(len(ladder.layers))],
                    audio_bps=max(microphone.rate.bps(), 32_000.0) if microphone else 32_000.0,
                    keyframes_to_teacher=requests[1],
                    keyframes_from_classrooms=requests[0],
                )
            )


async def follow(
    schedule: Schedule, lines: list[Line], sampler: Sampler, decisions: Decisions
) -> None:
    """Run the schedule on every line, sampling all along."""
    start = time.monotonic()
    sampler.start = start
    decisions.mark_start()
    sampler.sample(start)
    steps = list(schedule.steps)
    tick = 0
    while True:
        now = time.monotonic()
        elapsed = now - start
        while steps and steps[0][0] <= elapsed:
            _, rate = steps.pop(0)
            for line in lines:
                line.set_rate(rate)
        if elapsed >= schedule.duration:
            break
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * SAMPLE_EVERY - time.monotonic()))
        sampler.sample(time.monotonic())


async def wait_for_video(server: RunningServer, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lesson = server.lessons.get(LESSON)
        peers = [classroom_peer(lesson, name) for name in names]
        if all(p is not None and p.link_stats().get("sent_bps", 0) > 0 for p in peers):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the classrooms got no video within {timeout} s")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    schedule = Schedule.parse(args.profile, args.duration).scaled(args.time_scale)
    out: Path = args.out
    names = [f"classroom-{i + 1}" for i in range(args.classrooms)]
    counter = RtpBytes()
    decisions = Decisions()
    figures: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="rural-") as tmp,
        Lines() as lines,
        counter.installed(),
        decisions.installed(),
    ):
        workdir = Path(tmp)
        rooms = {name: lines.add(schedule.steps[0][1], loss_percent=args.loss) for name in names}
        async with serve_on_lines(workdir, lines) as server:
            teacher = await start_teacher(server, LESSON)
            sampler = Sampler(server, rooms, counter)
            lead = args.lead
            processes: list[NetClassroom] = []
            try:
                if args.browser:
                    line = rooms[names[0]]
                    origin = url_on(server, line)
                    url = origin + server.page(LESSON, "classroom", names[0]).removeprefix(
                        server.url
                    )
                    async with chromium_on(line, workdir, origin) as browser:
                        page, log = await open_page(browser, url)
                        await wait_for_state(page, "live", timeout=30)
                        await wait_for_video(server, names, timeout=30)
                        await asyncio.sleep(lead)
                        before = await page.evaluate(BROWSER_STATS) or {}
                        await follow(schedule, list(rooms.values()), sampler, decisions)
                        after = await page.evaluate(BROWSER_STATS) or {}
                        figures[names[0]] = browser_figures(before, after, schedule.duration)
                        figures[names[0]]["page_problems"] = log.problems()
                else:
                    seconds = lead + schedule.duration + 15
                    for name in names:
                        process = NetClassroom(
                            rooms[name], url_on(server, rooms[name]),
                            server.token(LESSON, "classroom", name), seconds, out, name,
                        )  # fmt: skip
                        await process.start()
                        processes.append(process)
                    await wait_for_video(server, names, timeout=30)
                    await asyncio.sleep(lead)
                    await follow(schedule, list(rooms.values()), sampler, decisions)
                    for process in processes:
                        await process.stop()
                        result = await process.result()
                        figures[process.name] = python_figures(
                            result, schedule.duration, sampler.start
                        )
            finally:
                for process in processes:
                    await process.stop()
                await teacher.close()

    report: dict[str, Any] = {
        "benchmark": "rural",
        "profile": "RFC 8867 5.1" if args.profile == RFC8867_5_1 else args.profile,
        "schedule": schedule.describe(),
        "duration_s": schedule.duration,
        "queue": "tbf latency 300ms",
        "loss_percent": args.loss,
        "classroom": "chromium" if args.browser else "python (resilient receivers)",
        "classrooms": {},
        "targets": TARGETS,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_after": load_average(),
        },
    }
    for name in names:
        report["classrooms"][name] = figures.get(name, {})
    # "<lesson> peer=<id> layer a -> b: reason (...)", seconds from the profile's start
    report["layer_decisions"] = [[t, message] for t, message in decisions.seen]
    return analyse(report, schedule, sampler.samples, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench/rural"), help="output dir")
    parser.add_argument("--profile", default=RFC8867_5_1, help="seconds:bps steps")
    parser.add_argument("--duration", type=float, default=DURATION, help="seconds")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="stretch (or shrink) the profile's time"
    )
    parser.add_argument("--classrooms", type=int, default=1, help="each on its own line")
    parser.add_argument("--loss", type=float, default=0.0, help="random loss on each line, %%")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds of video before")
    parser.add_argument("--browser", action="store_true", help="Chromium as the classroom")
    parser.add_argument(
        "--reanalyse", action="store_true", help="recompute the figures of OUT's last run"
    )
    args = parser.parse_args(argv)
    if args.reanalyse:
        json.dump(reanalyse(args.out), sys.stdout, indent=2)
        print()
        return 0
    if args.browser and args.classrooms != 1:
        parser.error("--browser runs one classroom")
    reason = unavailable()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run(args))
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
