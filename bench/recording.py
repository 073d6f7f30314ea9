"""Recording and library figures for docs/benchmarks.md:

1. CPU of recording one lesson live, as a share of one core: the server's CPU with
   a 720p teacher (bench.clip, published without encoding) and recording on, minus
   the same with recording off, alternated `--repeat` times.
2. Reprocessing speed: the rendition job (`python -m recorder.process`) on the
   archive just recorded, as a multiple of real time, with 1 and 2 threads.
3. Seconds of lesson lost after kill -9 of the server mid-lesson.

    python -m bench.recording [--seconds 20] [--repeat 3] [--json out.json]
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av

from bench.children import Child, stop_all
from bench.clip import make_clip
from bench.point import free_port
from bench.procstat import cpu_seconds, load_average
from server.tokens import Tokens

LESSON = "bench"
SECRET = "b" * 48
REPO = Path(__file__).resolve().parent.parent


async def run_lesson(
    workdir: Path, clip: Path, *, record: bool, seconds: float, kill: bool = False
) -> dict[str, Any]:
    """One lesson: a server, the clip's teacher, `seconds` of steady state."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = workdir / f"var-{'on' if record else 'off'}-{time.monotonic_ns()}"
    env = {
        "ZHUANDI_TOKENS_SECRET": SECRET,
        "ZHUANDI_RECORDER_ENABLED": "true" if record else "false",
        "ZHUANDI_LIBRARY_PROCESS_AFTER_LESSON": "false",
    }
    server = await Child.start(
        "server",
        [
            "-m",
            "server.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ice-address",
            "127.0.0.1",
            "--data-dir",
            str(data),
        ],
        workdir,
        talk=False,
        env=env,
    )
    children = [server]
    try:
        await asyncio.sleep(2.0)  # the server's start-up
        token = Tokens(SECRET).issue(LESSON, "teacher", "teacher", 3600)
        publisher = await Child.start(
            "publisher", ["-m", "bench.publisher", url, token, str(clip)], workdir, talk=True
        )
        children.append(publisher)
        await publisher.read_event(40)
        await asyncio.sleep(3.0)  # connected, first keyframes, recording started
        before, t0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(seconds)
        after, t1 = cpu_seconds(server.pid), time.monotonic()
        result: dict[str, Any] = {"cores": (after - before) / (t1 - t0), "data": data}
        if kill:
            os.kill(server.pid, signal.SIGKILL)
            result["killed_at"] = time.time()
            await server.process.wait()
        return result
    finally:
        await stop_all(children)


def recorded_seconds(segment: Path) -> float:
    """How far a (possibly cut) segment plays: the last packet's time."""
    last = 0.0
    with av.open(str(segment)) as container:
        try:
            for packet in container.demux():
                if packet.pts is not None and packet.time_base is not None:
                    last = max(last, float(packet.pts * packet.time_base))
        except av.FFmpegError:
            pass
    return last


def reprocess(archive: Path, output: Path, threads: int) -> dict[str, float]:
    shutil.rmtree(output, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "recorder.process",
            str(archive),
            str(output),
            "--threads",
            str(threads),
            "--nice",
            "0",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    duration = json.loads((output / "renditions.json").read_text())["duration"]
    return {
        "threads": threads,
        "lesson_seconds": duration,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "speed": duration / wall,
        "cpu_per_lesson_second": cpu / duration,
    }


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    clip = make_clip(workdir / "clip.webm")
    load = load_average()[0]
    on: list[float] = []
    off: list[float] = []
    archive: Path | None = None
    for round_ in range(args.repeat):
        for record in (False, True) if round_ % 2 == 0 else (True, False):
            result = await run_lesson(workdir, clip, record=record, seconds=args.seconds)
            (on if record else off).append(result["cores"])
            print(f"recording {'on ' if record else 'off'}: server {result['cores']:.3%} of a core")
            if record:
                archive = result["data"] / "recordings" / LESSON
    assert archive is not None
    share = sum(on) / len(on) - sum(off) / len(off)
    print(f"recording one 720p lesson live: {share:.2%} of a core")
    jobs = [reprocess(archive, workdir / f"out-{n}", n) for n in (1, 2)]
    for job in jobs:
        print(
            f"reprocessing, {job['threads']} thread(s): {job['speed']:.1f}x real time "
            f"({job['lesson_seconds']:.0f} s lesson in {job['wall_seconds']:.1f} s, "
            f"{job['cpu_per_lesson_second']:.2f} CPU s per lesson second)"
        )
    losses = []
    for _ in range(args.kills):
        killed = await run_lesson(workdir, clip, record=True, seconds=args.seconds, kill=True)
        archive_dir = killed["data"] / "recordings" / LESSON
        manifest = json.loads((archive_dir / "archive.json").read_text())
        segment = manifest["segments"][-1]
        # the file's time 0 is its first packet, which arrived just after `started`
        kept = recorded_seconds(archive_dir / segment["file"])
        losses.append(killed["killed_at"] - segment["started"] - kept)
        print(f"kill -9: {losses[-1]:.2f} s of lesson lost")
    return {
        "seconds": args.seconds,
        "repeat": args.repeat,
        "load_before": load,
        "server_cores_recording_on": on,
        "server_cores_recording_off": off,
        "recording_share_of_a_core": share,
        "reprocessing": jobs,
        "kill9_seconds_lost": losses,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recording", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="steady state per run")
    parser.add_argument("--repeat", type=int, default=3, help="on/off pairs")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 runs")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        figures = asyncio.run(bench(args, Path(tmp)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
