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
from dataclasses import asdict
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport

from bench.capacity import (
    Sample,
    Schedule,
    climb_after_rises,
    keyframe_rates,
    phase_summary,
    settle_after_drops,
)
from bench.procstat import load_average
from bench.rateplot import plot
from media import adapter
from server.lesson import Lesson
from server.peer import Peer
from tests.browser import open_page, wait_for_state
from tests.conftest import RunningServer
from tests.netns import Line, Lines, chromium_on, serve_on_lines, unavailable, url_on
from tests.netpeer import NetClassroom, Reception, start_teacher

RFC8867_5_1 = "0:1M,40:2.5M,60:600k,80:1M"
DURATION = 100.0
SAMPLE_EVERY = 0.5
LESSON = "rural-bench"
# SRTP tag, UDP, IPv4 and Ethernet headers: what a packet costs the line beyond RTP
PACKET_OVERHEAD = 10 + 8 + 20 + 14
TARGETS = {
    "settle_s": 1.0,
    "freeze_share": 0.01,
    "audio_loss_share": 0.01,
    "keyframes_to_teacher_per_second": 1.0,
}

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


def python_figures(result: Reception, duration: float, start: float) -> dict[str, Any]:
    """What a Python classroom saw, over the profile's run."""
    end = start + duration
    first = result.first_frame_at()
    frozen = result.freezes(start, end)
    expected, received = result.audio_frames(start, end)
    frames = result.frames_between(start, end)
    return {
        "error": result.error,
        "frames_decoded": len(frames),
        "frames_in_order": result.in_order(),
        "repeated_numbers": result.repeats(),
        "damaged_frames": result.data["damaged"],
        "sizes": sorted({f"{w}x{h}" for _, _, w, h in frames}),
        "first_frame_before_profile_s": round(start - first, 2) if first else None,
        "freeze_s": round(sum(length for _, length in frozen), 2),
        "freeze_share": round(sum(length for _, length in frozen) / duration, 4),
        "freezes": len(frozen),
        "longest_freeze_s": round(max((length for _, length in frozen), default=0.0), 2),
        "audio_frames_expected": expected,
        "audio_frames_lost": expected - received,
        "audio_loss_share": round((expected - received) / expected, 4) if expected else None,
        "tone_present": result.data["tone_present"],
        "receivers": result.data["receivers"],
    }


def browser_figures(before: dict[str, Any], after: dict[str, Any], duration: float) -> dict:
    video_before, video = before.get("video", {}), after.get("video", {})
    audio_before, audio = before.get("audio", {}), after.get("audio", {})
    frozen = video.get("totalFreezesDuration", 0) - video_before.get("totalFreezesDuration", 0)
    received = audio.get("packetsReceived", 0) - audio_before.get("packetsReceived", 0)
    lost = audio.get("packetsLost", 0) - audio_before.get("packetsLost", 0)
    return {
        "frames_decoded": video.get("framesDecoded", 0) - video_before.get("framesDecoded", 0),
        "freeze_s": round(frozen, 2),
        "freeze_share": round(frozen / duration, 4),
        "freezes": video.get("freezeCount", 0) - video_before.get("freezeCount", 0),
        "freeze_definition": "Chromium's totalFreezesDuration (its own freeze rule)",
        "audio_packets_received": received,
        "audio_frames_lost": lost,
        "audio_loss_share": round(lost / (received + lost), 4) if received + lost else None,
        "audio_concealed_share": round(
            (audio.get("concealedSamples", 0) - audio_before.get("concealedSamples", 0))
            / max(
                1,
                audio.get("totalSamplesReceived", 0) - audio_before.get("totalSamplesReceived", 0),
            ),
            4,
        ),
    }


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


def analyse(
    report: dict[str, Any], schedule: Schedule, samples: dict[str, list[Sample]], out: Path
) -> dict[str, Any]:
    """Add the capacity figures, the samples, the plots and the verdict to a report
    that has each classroom's own figures, and write it all to `out`."""
    first = next(iter(samples.values()), [])
    report["keyframes"] = keyframe_rates(first)
    for name, mine in samples.items():
        report["classrooms"][name] = {
            **report["classrooms"].get(name, {}),
            "phases": phase_summary(schedule, mine),
            "drops": settle_after_drops(schedule, mine),
            "rises": climb_after_rises(schedule, mine),
            "time_audio_only_s": round(sum(SAMPLE_EVERY for s in mine if s.layer is None), 1),
        }
        (out / f"{name}-samples.json").write_text(json.dumps([asdict(s) for s in mine]))
        loss = report.get("loss_percent")
        title = f"{report['profile']}: {report['classroom']}" + (f", {loss}% loss" if loss else "")
        why = plot(mine, out / f"{name}.png", title)
        report["classrooms"][name]["plot"] = str(out / f"{name}.png") if why is None else why
    report["verdict"] = verdict(report)
    (out / "rural.json").write_text(json.dumps(report, indent=2))
    return report


def verdict(report: dict[str, Any]) -> dict[str, bool | None]:
    """Each target met (True), missed (False) or not measured (None)."""
    rooms = list(report["classrooms"].values())
    settles = [d["settle_s"] for room in rooms for d in room["drops"] if not d["already_under"]]
    freeze = [room.get("freeze_share") for room in rooms]
    audio = [room.get("audio_loss_share") for room in rooms]
    keyframes = report["keyframes"].get("max_in_one_second")
    return {
        "settle_within_1s": all(s is not None and s <= TARGETS["settle_s"] for s in settles)
        if settles
        else None,
        "freezes_under_1pct": None
        if None in freeze
        else all(f is not None and f < TARGETS["freeze_share"] for f in freeze),
        "audio_loss_under_1pct": None
        if None in audio
        else all(a is not None and a < TARGETS["audio_loss_share"] for a in audio),
        "at_most_1_keyframe_request_per_s": None if keyframes is None else keyframes <= 1,
    }


def reanalyse(out: Path) -> dict[str, Any]:
    """Recompute the figures of an earlier run from its OUT/rural.json and samples."""
    report = json.loads((out / "rural.json").read_text())
    steps = tuple((float(step["at_s"]), int(step["bps"])) for step in report["schedule"])
    schedule = Schedule(steps, float(report["duration_s"]))
    samples = {
        name: [Sample(**raw) for raw in json.loads((out / f"{name}-samples.json").read_text())]
        for name in report["classrooms"]
    }
    return analyse(report, schedule, samples, out)


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
