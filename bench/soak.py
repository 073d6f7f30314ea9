"""Soak benchmark: one long lesson, and whether the server stays the same through it.

A 30-minute lesson (`--minutes`) with six classrooms: four on loopback and two on
rural lines, each in its own network namespace behind a veth shaped with tbf and
losing packets with nft (tests/netns.py). The server is the real `zhuandi serve`, in
its own process tree (the front process and its media workers), recording the
lesson. The teacher publishes bench/clip.py's 720p VP8 clip (~1.5 Mbit/s) with
Opus, as encoded; the loopback classrooms count what arrives (bench/receivers.py,
one of them decoding and checking each frame's number); the rural ones are
`zhuandi classroom --record`, which reconnects by itself as a school's PC would.
The namespaces reach the server's signalling through a small TCP relay in this
process (the server listens on loopback only); their media goes straight to the
server's ICE candidates on each line's host address. Needs root.

    .venv/bin/python -m bench.soak --minutes 30 --out var/bench/soak

Every `--sample` seconds (10) it records the server's memory (RSS of the process
tree) and CPU, what waits in its queues (/metrics: zhuandi_queued, zhuandi_tasks,
zhuandi_peer_connections), its peers, and each classroom's layer. At the end the
teacher leaves, the lesson closes, and the archive's segments are measured with
ffprobe against the lesson's length. JSON on stdout and in OUT/soak.json, a plot in
OUT/soak.png. docs/benchmarks.md explains every figure.

Targets: memory flat within 5 % (the median of the last 3 minutes against minutes 3
to 6, after the warm-up), no queue growing, no archive second lost.
"""

import sys
from pathlib import Path

if not __package__:  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import subprocess
import time
from dataclasses import asdict
from typing import Any

import aiohttp

from bench.children import REPO, Child, ChildError, stop_all
from bench.clip import make_clip
from bench.point import free_port
from bench.procstat import cpu_seconds, load_average, process_tree, rss_bytes
from bench.soakreport import QUEUES, Soak, SoakSample, analyse, plot
from server.tokens import Tokens
from tests.netns import Line, Lines, unavailable

LESSON = "bench"  # bench.publisher and bench.receivers join this lesson
LOOPBACK_CLASSROOMS = 4
RURAL = ((1_200_000, 3.0), (2_500_000, 3.0))  # (rate bit/s, loss %) of each rural line
# A signalling-only path into a namespace: the CLI's CLI code pins its ICE host
# candidates to the namespace's own address (../shared/TESTING.md).
CLI = (
    "import sys; from media import adapter; adapter.set_host_addresses([sys.argv.pop(1)]); "
    "from server.cli import main; sys.exit(main())"
)


# -- the relay into the namespaces ---------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()


async def relay(host: str, port: int, target_port: int) -> asyncio.Server:
    """Accept on host:port, connect each to 127.0.0.1:target_port (signalling only)."""

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(accept, host, port)


# -- reading the server ------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


async def read_server(
    http: aiohttp.ClientSession, url: str, teacher_token: str
) -> tuple[dict[str, float], dict[str, Any]]:
    async with http.get(f"{url}/metrics") as response:
        metrics = parse_metrics(await response.text())
    async with http.get(
        f"{url}/api/lessons/{LESSON}/stats", headers={"Authorization": f"Bearer {teacher_token}"}
    ) as response:
        stats = await response.json() if response.status == 200 else {}
    return metrics, stats


class ServerTree:
    """CPU and memory of the server's process tree, sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = self._cpu_now()
        self._at = time.monotonic()

    def _cpu_now(self) -> float:
        return sum(cpu_seconds(pid) for pid in process_tree(self.pid))

    def sample(self) -> tuple[float, dict[str, float], float, int]:
        """(RSS MB, RSS MB by process, CPU cores since the last call, processes)."""
        pids = process_tree(self.pid)
        by_process = {
            ("front" if pid == self.pid else f"worker-{pid}"): rss_bytes(pid) / 1e6 for pid in pids
        }
        now, cpu = time.monotonic(), self._cpu_now()
        cores = (cpu - self._cpu) / max(now - self._at, 1e-3)
        self._cpu, self._at = cpu, now
        return sum(by_process.values()), by_process, cores, len(pids)


# -- the run -------------------------------------------------------------------------


async def start_server(port: int, data: Path, lines: list[Line], secret: str, logs: Path) -> Child:
    ice = ["127.0.0.1", *(line.host_address for line in lines)]
    args = ["-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    for address in ice:
        args += ["--ice-address", address]
    args += ["--data-dir", str(data)]
    env = {
        "ZHUANDI_TOKENS_SECRET": secret,
        "ZHUANDI_LIBRARY_PROCESS_AFTER_LESSON": "false",  # measure the lesson, not the job
    }
    return await Child.start("server", args, logs, talk=False, env=env)


async def wait_healthy(http: aiohttp.ClientSession, url: str, server: Child) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.returncode is not None:
            raise ChildError(f"the server exited: {server.tail()}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with http.get(f"{url}/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.3)
    raise ChildError(f"the server did not come up: {server.tail()}")


async def start_rural(
    line: Line, port: int, tokens: Tokens, index: int, out: Path
) -> asyncio.subprocess.Process:
    token = tokens.issue(LESSON, "classroom", f"rural-{index}", 4 * 3600)
    url = f"http://{line.host_address}:{port}/lesson/{LESSON}/classroom?token={token}"
    record = out / f"rural-{index}.mkv"
    log = (out / f"rural-{index}.log").open("wb")
    command = [
        *line.exec_prefix(),
        sys.executable,
        "-c",
        CLI,
        line.ns_address,
        "classroom",
        url,
        "--record",
        str(record),
    ]
    try:
        return await asyncio.create_subprocess_exec(
            *command,
            cwd=REPO,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


async def stop_process(process: asyncio.subprocess.Process, sig: int = signal.SIGINT) -> int:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return process.returncode if process.returncode is not None else -1


def probe_duration(path: Path) -> float:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        return float(json.loads(result.stdout)["format"]["duration"])
    except (ValueError, KeyError, TypeError):
        return 0.0


def measure_archive(data: Path) -> dict[str, Any]:
    directory = data / "recordings" / LESSON
    try:
        manifest = json.loads((directory / "archive.json").read_text())
    except (OSError, ValueError) as exc:
        return {"error": f"no archive: {exc}"}
    segments = []
    for segment in manifest.get("segments", []):
        path = directory / segment["file"]
        segments.append(
            {
                "file": segment["file"],
                "reason": segment.get("reason"),
                "duration_s": round(probe_duration(path), 2),
                "bytes": path.stat().st_size if path.exists() else 0,
            }
        )
    return {
        "state": manifest.get("state"),
        "segments": segments,
        "duration_s": round(sum(s["duration_s"] for s in segments), 2),
    }


async def run(args: argparse.Namespace) -> Soak:
    out: Path = args.out
    soak = Soak()
    secret = secrets.token_urlsafe(32)
    tokens = Tokens(secret)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clip = make_clip(out / "clip.mkv")
    data = out / "var"
    teacher_token = tokens.issue(LESSON, "teacher", "soak teacher", 4 * 3600)
    children: list[Child] = []
    rural: list[asyncio.subprocess.Process] = []
    relays: list[asyncio.Server] = []
    with Lines() as lines:
        made = [lines.add(rate, loss) for rate, loss in RURAL[: args.rural]]
        server = await start_server(port, data, made, secret, out)
        children.append(server)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            try:
                await wait_healthy(http, url, server)
                tree = ServerTree(server.pid)
                for line in made:
                    relays.append(await relay(line.host_address, port, port))
                teacher = await Child.start(
                    "teacher",
                    ["-m", "bench.publisher", url, teacher_token, str(clip)],
                    out,
                    talk=True,
                )
                children.append(teacher)
                await teacher.read_event(30)
                started = time.monotonic()
                room_tokens = [
                    tokens.issue(LESSON, "classroom", f"loopback-{i + 1}", 4 * 3600)
                    for i in range(args.loopback)
                ]
                receivers = await Child.start(
                    "receivers",
                    ["-m", "bench.receivers", url, *room_tokens, "--decode", "1"],
                    out,
                    talk=True,
                )
                children.append(receivers)
                for index, line in enumerate(made, 1):
                    rural.append(await start_rural(line, port, tokens, index, out))
                ready = await receivers.read_event(60)
                if ready.get("errors"):
                    soak.errors += [str(e) for e in ready["errors"]]
                end = started + args.minutes * 60
                next_at = started
                while time.monotonic() < end:
                    next_at += args.sample
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    if server.process.returncode is not None:
                        soak.errors.append(f"the server exited: {server.tail()}")
                        break
                    soak.samples.append(
                        await sample(http, url, teacher_token, tree, receivers, started)
                    )
                    last = soak.samples[-1]
                    print(
                        f"[{last.t / 60:5.1f} min] rss {last.rss_mb:6.1f} MB "
                        f"cpu {last.cpu_cores:.2f} queued {last.queued} "
                        f"tasks {last.tasks:.0f} layers {last.layers}",
                        file=sys.stderr,
                        flush=True,
                    )
                soak.receivers = await receivers.ask("stats")
                soak.lesson_s = time.monotonic() - started
            finally:
                for process in rural:
                    code = await stop_process(process)
                    soak.rural.append({"exit": code})
                for each in relays:
                    each.close()
                # the teacher and the loopback classrooms leave; the lesson closes
                await stop_all([c for c in children if c is not server])
                await wait_closed(http, url, teacher_token)
                await stop_all([server])
    soak.archive = measure_archive(data)
    for index, entry in enumerate(soak.rural, 1):
        record = out / f"rural-{index}.mkv"
        entry["recorded_s"] = round(probe_duration(record), 1) if record.exists() else 0.0
    return soak


async def wait_closed(http: aiohttp.ClientSession, url: str, teacher_token: str) -> None:
    """Until the server no longer lists the lesson (its recording is then finished):
    the loopback classrooms leave without a goodbye, so their seats wait
    server.reconnect_grace (60 s) first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
            async with http.get(
                f"{url}/api/live", headers={"Authorization": f"Bearer {teacher_token}"}
            ) as response:
                if not (await response.json()).get("lessons"):
                    return
        await asyncio.sleep(1)


async def sample(
    http: aiohttp.ClientSession,
    url: str,
    teacher_token: str,
    tree: ServerTree,
    receivers: Child,
    started: float,
) -> SoakSample:
    rss, by_process, cores, processes = tree.sample()
    try:
        metrics, stats = await read_server(http, url, teacher_token)
    except (aiohttp.ClientError, OSError, ValueError, TimeoutError):
        metrics, stats = {}, {}
    try:
        counts = await receivers.ask("stats", timeout=10)
    except ChildError:
        counts = {}
    layers = {str(c.get("name")): c.get("layer") for c in stats.get("classrooms", [])}
    return SoakSample(
        t=round(time.monotonic() - started, 1),
        rss_mb=round(rss, 2),
        rss_by_process_mb={k: round(v, 2) for k, v in by_process.items()},
        cpu_cores=round(cores, 4),
        processes=processes,
        queued={q: metrics.get(f'zhuandi_queued{{queue="{q}"}}', -1.0) for q in QUEUES},
        tasks=metrics.get("zhuandi_tasks", -1.0),
        peer_connections=metrics.get("zhuandi_peer_connections", -1.0),
        peers=sum(v for k, v in metrics.items() if k.startswith("zhuandi_peers{")),
        forwarded_packets=metrics.get("zhuandi_forwarded_packets_total", -1.0),
        layers=layers,
        received_frames=int(counts.get("frames", 0)),
        load=load_average()[0],
    )


# -- the figures -----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_before": load_average(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="the lesson's length")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--loopback", type=int, default=LOOPBACK_CLASSROOMS)
    parser.add_argument("--rural", type=int, default=len(RURAL), choices=range(len(RURAL) + 1))
    parser.add_argument("--out", type=Path, default=Path("var/bench/soak"))
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason is not None:
        print(f"bench.soak: {reason}", file=sys.stderr)
        return 2
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    soak = asyncio.run(run(args))
    report: dict[str, Any] = {
        "command": "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": info,
        "settings": {
            "minutes": args.minutes,
            "loopback": args.loopback,
            "rural": [{"rate_bps": r, "loss_pct": p} for r, p in RURAL[: args.rural]],
            "sample_s": args.sample,
        },
        "figures": analyse(soak, args.loopback),
        "archive": soak.archive,
        "samples": [asdict(s) for s in soak.samples],
    }
    report["plot"] = plot(soak, args.out / "soak.png")
    (args.out / "soak.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
