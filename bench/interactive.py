"""Two-way lesson benchmark (issue 5): one teacher publishing camera and courseware,
N = 1..6 interactive classrooms each publishing camera and microphone, with the
grid, the classroom mix and the recording all on. It reports, for each N, the
server's CPU and the teacher's downlink (which the grid and the one mixed track
should keep small as N grows).

    .venv/bin/python -m bench.interactive --max 6 --seconds 10 > interactive.json

The server runs as its own process (`zhuandi serve --workers 0`, so that its CPU is
one process's); the peers are aiortc in this process (tests/peers.py), sending
numbered frames and tones, the teacher at 640x360, the classrooms at 320x240.
"""

import sys
from pathlib import Path

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import os
import tempfile
import time
from typing import Any

from bench.point import free_port
from bench.procstat import cpu_seconds, load_average, process_tree, rss_bytes
from server.tokens import Tokens, load_or_create_secret
from tests.peers import LayoutPeer

REPO = Path(__file__).resolve().parent.parent
LESSON = "interactive"
CLASSROOM_LAYOUT = [
    "send:microphone",
    "send:camera",
    "receive:teacher-audio",
    "receive:teacher-camera",
    "receive:courseware",
    "receive:stage-audio",
    "receive:stage-camera",
]


def teacher_layout(grid: int) -> list[str]:
    return [
        "send:microphone",
        "send:camera",
        "send:courseware",
        "receive:classroom-mix",
        *["receive:grid"] * grid,
    ]


async def downlink_bytes(peer: LayoutPeer) -> int:
    """Bytes the peer's connection received so far (its transport's stats)."""
    report = await peer.pc.getStats()
    return sum(
        int(getattr(s, "bytesReceived", 0) or 0) for s in report.values() if s.type == "transport"
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="zhuandi-interactive-") as tmp:
        data = Path(tmp) / "var"
        port = free_port()
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--ice-address", "127.0.0.1", "--data-dir", str(data),
            "--workers", "0", cwd=REPO, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        peers: list[LayoutPeer] = []
        rows = []
        try:
            await asyncio.sleep(3.0)
            tokens = Tokens(load_or_create_secret(data))
            teacher = LayoutPeer(
                url, tokens.issue(LESSON, "teacher", "teacher", 3600), teacher_layout(args.max),
                tone=440, width=640, height=360,
            )  # fmt: skip
            peers.append(teacher)
            await teacher.join()
            await teacher.start()
            for n in range(1, args.max + 1):
                room = LayoutPeer(
                    url, tokens.issue(LESSON, "classroom", f"classroom {n}", 3600),
                    CLASSROOM_LAYOUT, tone=300 + 100 * n, first=10_000 * n,
                )  # fmt: skip
                peers.append(room)
                await room.join()
                await room.start()
                await asyncio.sleep(args.settle)
                pids = process_tree(server.pid)
                cpu0, bytes0, t0 = (
                    sum(cpu_seconds(p) for p in pids),
                    await downlink_bytes(teacher),
                    time.monotonic(),
                )
                grid0 = {k: len(v) for k, v in teacher.numbers.items()}
                await asyncio.sleep(args.seconds)
                pids = process_tree(server.pid)
                cpu1, bytes1, t1 = (
                    sum(cpu_seconds(p) for p in pids),
                    await downlink_bytes(teacher),
                    time.monotonic(),
                )
                grid = {k: len(v) - grid0.get(k, 0) for k, v in teacher.numbers.items()}
                elapsed = t1 - t0
                row = {
                    "classrooms": n,
                    "server_cpu_cores": round((cpu1 - cpu0) / elapsed, 4),
                    "teacher_downlink_kbps": round((bytes1 - bytes0) * 8 / elapsed / 1000, 1),
                    "grid_tiles_with_frames": sum(1 for count in grid.values() if count > 0),
                    "grid_fps": {k: round(v / elapsed, 1) for k, v in sorted(grid.items())},
                    "server_rss_mb": round(sum(rss_bytes(p) for p in pids) / 2**20, 1),
                }
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        finally:
            for peer in peers:
                await peer.close()
            server.terminate()
            await server.wait()
    return {
        "command": " ".join([Path(sys.executable).name, "-m", "bench.interactive", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "load_before": load_before},
        "settings": {"max": args.max, "seconds": args.seconds, "settle": args.settle},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--max", type=int, default=6, help="classrooms at the end")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per N")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after each join")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
