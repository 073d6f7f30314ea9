"""One measurement: a fresh server (ours or the stock one), one teacher, N classrooms,
and the server's CPU over a steady-state window."""

import asyncio
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.children import Child, ChildError, stop_all
from bench.procstat import (
    cpu_seconds,
    cpu_times,
    load_average,
    machine_times,
    process_tree,
    rss_bytes,
)
from media.delay import quantile
from server.tokens import Tokens

LESSON = "bench"
FORWARD = "forward"  # our server as configured by default (its fast send path)
FORWARD_AIORTC = "forward-aiortc"  # our server sending through aiortc's RTCRtpSender
STOCK = "mediarelay"  # bench/stock_server.py: decode once, encode per subscriber
MODES = (FORWARD, FORWARD_AIORTC, STOCK)
OURS = (FORWARD, FORWARD_AIORTC)
CLIP_FPS = 30.0
# A point "fell behind" when its receivers got fewer video frames a second than this,
# or some were not on the top (forwarded) layer, or its server used this share of
# the machine's cores.
FULL_FPS = 0.9 * CLIP_FPS
BUSY_SHARE = 0.9
# Other processes' CPU (cores) above which a row notes that the machine was busy.
OTHERS_NOTED = 0.3


@dataclass(frozen=True)
class PointSettings:
    seconds: float
    warmup: float
    per_process: int
    decoders: int
    clip: Path
    workdir: Path
    secret: str
    remb: bool = False


@dataclass
class Sample:
    wall: float
    server_cpu: float
    server_system: float  # the kernel's part of server_cpu
    server_processes: int
    client_cpu: float
    bench_cpu: float
    machine_busy: float
    forwarded: float
    receivers: dict[str, int]
    # cumulative histogram buckets from /metrics: name -> [(upper bound, count)]
    histograms: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass
class Row:
    """One (mode, N) measurement; see docs/benchmarks.md for what each field means."""

    mode: str
    n: int  # classrooms in each lesson
    window_s: float
    connected: int
    server_cpu_cores: float
    server_system_cores: float  # the kernel's part (sockets, and on loopback the receive path)
    forwarded_pps: float
    received_pps: float
    pps_per_core: float | None
    us_per_packet_avg: float | None
    server_rss_mb: float
    server_processes: int
    video_fps_per_receiver: float
    video_kbps_per_receiver: float
    decode_receivers: int
    decoded_fps: float
    decode_damaged: int
    decode_gaps: int
    # RTP packets the counting receivers found missing by sequence number
    missing_packets: int
    client_cpu_cores: float
    bench_cpu_cores: float
    other_cpu_cores: float
    load_before: float
    fell_behind: bool
    layers: dict[str, int] | None = None
    # the server's own histograms over the window (our server only)
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_p99: float | None = None
    loop_lag_ms_p99: float | None = None
    loop_lag_ms_max_bucket: float | None = None
    attempts: int = 1
    lessons: int = 1  # lessons at once, each a teacher and n classrooms
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = round(value, 4)
        return data


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_server(
    mode: str, port: int, settings: PointSettings, n: int, lessons: int = 1
) -> Child:
    logs = settings.workdir
    if mode == STOCK:
        args = ["-m", "bench.stock_server", "--port", str(port)]
        return await Child.start(f"{mode}-{n}-server", args, logs, talk=False)
    data_dir = settings.workdir / f"var-{n}x{lessons}"
    args = [
        "-m", "server.cli", "serve",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--ice-address", "127.0.0.1",
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    env = {
        "ZHUANDI_TOKENS_SECRET": settings.secret,
        "ZHUANDI_SERVER_MAX_PEERS_PER_LESSON": str(n + 8),
        "ZHUANDI_SERVER_MAX_PEERS": str(lessons * (n + 8)),
        "ZHUANDI_RECORDER_ENABLED": "false",
        "ZHUANDI_MEDIA_FAST_PATH": "false" if mode == FORWARD_AIORTC else "true",
    }
    return await Child.start(f"{mode}-{n}-server", args, logs, talk=False, env=env)


async def wait_until(check: Any, what: str, server: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.returncode is not None:
            raise ChildError(f"{server.name} exited: {server.tail()}")
        try:
            if await check():
                return
        except (aiohttp.ClientError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ChildError(f"{what} within {timeout:.0f} s; server log:\n{server.tail()}")
        await asyncio.sleep(0.2)


HISTOGRAMS = ("zhuandi_forward_delay_seconds", "zhuandi_loop_lag_seconds")


async def server_metrics(
    session: aiohttp.ClientSession, url: str
) -> tuple[float, dict[str, list[tuple[float, float]]]]:
    """Packets forwarded so far, and the delay histograms (cumulative buckets)."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    forwarded: float | None = None
    histograms: dict[str, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if line.startswith("zhuandi_forwarded_packets_total "):
            forwarded = float(line.split()[1])
        for name in HISTOGRAMS:
            if line.startswith(f'{name}_bucket{{le="'):
                bound = line.split('le="', 1)[1].split('"', 1)[0]
                histograms.setdefault(name, []).append((float(bound), float(line.split()[-1])))
    if forwarded is None:
        raise ChildError(
            f"no zhuandi_forwarded_packets_total in /metrics "
            f"(HTTP {response.status}): {text[:300]!r}"
        )
    return forwarded, {name: sorted(buckets) for name, buckets in histograms.items()}


def _window(
    a: list[tuple[float, float]] | None, b: list[tuple[float, float]] | None
) -> list[tuple[float, float]]:
    """A histogram's buckets over the window between two samples."""
    if not b:
        return []
    before = dict(a or [])
    return [(bound, count - before.get(bound, 0.0)) for bound, count in b]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _add(totals: dict[str, int], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, int) and key != "event":
            totals[key] = totals.get(key, 0) + value


async def video_layers(
    session: aiohttp.ClientSession, url: str, lesson: str, teacher_token: str
) -> dict[str, int]:
    """How many classrooms receive each ladder layer (our server's stats API)."""
    async with session.get(f"{url}/api/lessons/{lesson}/stats?token={teacher_token}") as response:
        stats = await response.json()
    layers: dict[str, int] = {}
    for classroom in stats.get("classrooms", []):
        name = str(classroom.get("layer"))
        layers[name] = layers.get(name, 0) + 1
    return layers


async def _sample(
    session: aiohttp.ClientSession, url: str, server: Child, clients: list[Child]
) -> Sample:
    replies = await asyncio.gather(*(c.ask("stats") for c in clients))
    server_pids = process_tree(server.pid)
    forwarded, histograms = await server_metrics(session, url)
    receivers: dict[str, int] = {}
    for reply in replies:
        if "receivers" in reply:
            _add(receivers, reply)
    times = os.times()
    server_times = [cpu_times(pid) for pid in server_pids]
    return Sample(
        wall=time.monotonic(),
        server_cpu=sum(user + system for user, system in server_times),
        server_system=sum(system for _, system in server_times),
        server_processes=len(server_pids),
        client_cpu=sum(cpu_seconds(c.pid) for c in clients),
        bench_cpu=times.user + times.system,
        machine_busy=machine_times().busy,
        forwarded=forwarded,
        receivers=receivers,
        histograms=histograms,
    )


def _row(mode: str, n: int, a: Sample, b: Sample, rss: int, load: float) -> Row:
    dt = b.wall - a.wall
    ra, rb = a.receivers, b.receivers

    def rate(key: str) -> float:
        return (rb.get(key, 0) - ra.get(key, 0)) / dt

    server = (b.server_cpu - a.server_cpu) / dt
    clients = (b.client_cpu - a.client_cpu) / dt
    bench = (b.bench_cpu - a.bench_cpu) / dt
    machine = (b.machine_busy - a.machine_busy) / dt
    forwarded = (b.forwarded - a.forwarded) / dt
    receivers = max(rb.get("receivers", 0), 1)
    fps = rate("frames") / receivers
    cores = os.cpu_count() or 1
    notes = []
    if fps < FULL_FPS:
        notes.append(f"receivers got {fps:.1f} video frames/s, fewer than {FULL_FPS:.0f}")
    if server > BUSY_SHARE * cores:
        notes.append(f"server used {server:.2f} of {cores} cores")
    if rb.get("connected", 0) < n:
        notes.append(f"only {rb.get('connected', 0)} of {n} receivers connected")
    fell_behind = bool(notes)
    delay = _window(
        a.histograms.get("zhuandi_forward_delay_seconds"),
        b.histograms.get("zhuandi_forward_delay_seconds"),
    )
    lag = _window(
        a.histograms.get("zhuandi_loop_lag_seconds"), b.histograms.get("zhuandi_loop_lag_seconds")
    )
    lag_worst = max((bound for bound, count in _increments(lag) if count > 0), default=None)
    others = max(machine - server - clients - bench, 0.0)
    if others > OTHERS_NOTED:
        notes.append(f"busy machine: other processes used {others:.2f} cores")
    return Row(
        mode=mode,
        n=n,
        window_s=dt,
        connected=rb.get("connected", 0),
        server_cpu_cores=server,
        server_system_cores=(b.server_system - a.server_system) / dt,
        forwarded_pps=forwarded,
        received_pps=rate("packets"),
        pps_per_core=forwarded / server if server > 0 else None,
        us_per_packet_avg=server / forwarded * 1e6 if forwarded > 0 else None,
        server_rss_mb=rss / 2**20,
        server_processes=b.server_processes,
        video_fps_per_receiver=fps,
        video_kbps_per_receiver=rate("video_bytes") * 8 / 1000 / receivers,
        decode_receivers=rb.get("decoding", 0),
        decoded_fps=rate("decoded") / max(rb.get("decoding", 0), 1),
        decode_damaged=rb.get("damaged", 0) - ra.get("damaged", 0),
        decode_gaps=rb.get("gaps", 0) - ra.get("gaps", 0),
        missing_packets=rb.get("missing", 0) - ra.get("missing", 0),
        client_cpu_cores=clients,
        bench_cpu_cores=bench,
        other_cpu_cores=others,
        load_before=load,
        fell_behind=fell_behind,
        latency_ms_p50=_ms(quantile(delay, 0.50)),
        latency_ms_p95=_ms(quantile(delay, 0.95)),
        latency_ms_p99=_ms(quantile(delay, 0.99)),
        loop_lag_ms_p99=_ms(quantile(lag, 0.99)),
        loop_lag_ms_max_bucket=_ms(lag_worst),
        notes=notes,
    )


def _increments(cumulative: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(upper bound, observations in that bucket alone)."""
    result, previous = [], 0.0
    for bound, count in cumulative:
        result.append((bound, count - previous))
        previous = count
    return result


async def measure(mode: str, n: int, settings: PointSettings, lessons: int = 1) -> Row:
    """Run one point: `lessons` lessons at once, each a teacher and `n` classrooms.
    Every child is stopped before this returns or raises."""
    load = load_average()[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tokens = Tokens(settings.secret)
    logs = settings.workdir
    if lessons > 1 and mode not in OURS:
        raise ChildError(f"{mode}: one lesson only")
    server = await start_server(mode, port, settings, n, lessons)
    clients: list[Child] = []
    names = [LESSON] if lessons == 1 else [f"{LESSON}-{k + 1}" for k in range(lessons)]
    point = f"{mode}-{n}" + (f"x{lessons}" if lessons > 1 else "")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def healthy() -> bool:
                async with session.get(f"{url}/healthz") as response:
                    return response.status == 200

            await wait_until(healthy, "no /healthz", server, 30)
            teachers = {name: tokens.issue(name, "teacher", "teacher", 3600) for name in names}
            for name, teacher in teachers.items():
                publisher = await Child.start(
                    f"{point}-{name}-publisher",
                    ["-m", "bench.publisher", url, teacher, str(settings.clip)],
                    logs,
                    talk=True,
                )
                clients.append(publisher)
                await publisher.read_event(40)
            if mode == STOCK:

                async def teacher_tracks() -> bool:
                    async with session.get(f"{url}/healthz") as response:
                        return len((await response.json())["teacher"]) == 2

                await wait_until(teacher_tracks, "no teacher tracks", server, 20)
            await asyncio.sleep(1.0)
            started = []
            for name in names:
                for first in range(0, n, settings.per_process):
                    count = min(settings.per_process, n - first)
                    room_tokens = [
                        tokens.issue(name, "classroom", f"classroom-{first + i + 1}", 3600)
                        for i in range(count)
                    ]
                    decode = settings.decoders if first == 0 else 0
                    args = ["-m", "bench.receivers", url, *room_tokens, "--decode", str(decode)]
                    if settings.remb:
                        args.append("--remb")
                    child = await Child.start(
                        f"{point}-{name}-receivers-{first}", args, logs, talk=True
                    )
                    clients.append(child)
                    started.append(child)
            readies = await asyncio.gather(*(c.read_event(90) for c in started))
            problems = [r for r in readies if r.get("errors") or r.get("without_frames")]
            await asyncio.sleep(settings.warmup)
            first_sample = await _sample(session, url, server, clients)
            await asyncio.sleep(settings.seconds)
            second_sample = await _sample(session, url, server, clients)
            rss = sum(rss_bytes(pid) for pid in process_tree(server.pid))
            row = _row(mode, n, first_sample, second_sample, rss, load)
            row.lessons = lessons
            if first_sample.server_processes != second_sample.server_processes:
                row.notes.append("the server's processes changed during the window")
            if mode in OURS:
                row.layers = {}
                for name, teacher in teachers.items():
                    for layer, count in (await video_layers(session, url, name, teacher)).items():
                        row.layers[layer] = row.layers.get(layer, 0) + count
                lower = sum(v for k, v in row.layers.items() if k != "top")
                if lower:
                    row.fell_behind = True
                    row.notes.append(f"{lower} classrooms not on the top layer: {row.layers}")
            for problem in problems:
                row.fell_behind = True
                row.notes.append(
                    f"at start: {problem.get('errors')} errors, "
                    f"{problem.get('without_frames')} receivers without frames"
                )
            return row
    finally:
        await stop_all(clients)
        await server.stop()
