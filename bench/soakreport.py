"""The soak run's figures and plot: what `bench.soak` samples, and how it is judged
(memory flat after the warm-up, no queue growing, no archive second lost)."""

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import least_squares

WARMUP_S = 180.0  # memory is compared from here on
BASELINE_S = 180.0  # ... over this long
TAIL_S = 180.0  # with the last this long
TARGETS = {"memory_growth_pct": 5.0, "archive_lost_s": 1.0}
QUEUES = ("outbox", "down_frames", "ladder", "recorder")


@dataclass
class SoakSample:
    t: float  # seconds since the lesson started
    rss_mb: float  # the server's process tree
    rss_by_process_mb: dict[str, float]
    cpu_cores: float  # since the previous sample
    processes: int
    queued: dict[str, float]
    tasks: float
    peer_connections: float
    peers: float
    forwarded_packets: float
    layers: dict[str, str | None]
    received_frames: int  # the loopback classrooms, together
    load: float


@dataclass
class Soak:
    samples: list[SoakSample] = field(default_factory=list)
    lesson_s: float = 0.0
    archive: dict[str, Any] = field(default_factory=dict)
    rural: list[dict[str, Any]] = field(default_factory=list)
    receivers: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def analyse(soak: Soak, loopback: int) -> dict[str, Any]:
    samples = soak.samples
    if not samples:
        return {"error": "no samples", "errors": soak.errors}
    end = samples[-1].t
    base = [s.rss_mb for s in samples if WARMUP_S <= s.t < WARMUP_S + BASELINE_S]
    tail = [s.rss_mb for s in samples if s.t >= end - TAIL_S]
    start_mb, end_mb = _median(base), _median(tail)
    growth = 100 * (end_mb - start_mb) / start_mb if start_mb and end_mb else None
    after = [s for s in samples if s.t >= WARMUP_S]
    fit = least_squares([s.t / 3600 for s in after], [s.rss_mb for s in after])
    thirds = [samples[i * len(samples) // 3 : (i + 1) * len(samples) // 3] for i in range(3)]
    queues: dict[str, Any] = {}
    for name in QUEUES:
        by_third = [[s.queued[name] for s in third] for third in thirds]
        queues[name] = {
            "max": max(s.queued[name] for s in samples),
            "mean_by_third": [round(statistics.fmean(v), 2) if v else None for v in by_third],
        }
    growing = [
        name
        for name, q in queues.items()
        if q["mean_by_third"][0] is not None
        and q["mean_by_third"][2] is not None
        and q["mean_by_third"][2] > 2 * q["mean_by_third"][0] + 5
    ]
    tasks = [[s.tasks for s in third] for third in thirds]
    cpu = [s.cpu_cores for s in samples]
    lost = None
    if soak.archive.get("duration_s") is not None:
        lost = round(max(0.0, soak.lesson_s - soak.archive["duration_s"]), 2)
    layers: dict[str, dict[str, float]] = {}
    for s in samples:
        for name, layer in s.layers.items():
            share = layers.setdefault(name, {})
            share[str(layer)] = share.get(str(layer), 0) + 1
    for name, counts in layers.items():
        total = sum(counts.values())
        layers[name] = {k: round(v / total, 3) for k, v in sorted(counts.items())}
    figures = {
        "minutes": round(end / 60, 1),
        "samples": len(samples),
        "rss_mb_start": start_mb,
        "rss_mb_end": end_mb,
        "memory_growth_pct": round(growth, 2) if growth is not None else None,
        "rss_slope_mb_per_hour": round(fit[0], 2) if fit else None,
        "rss_mb_min_max_after_warmup": (
            [min(s.rss_mb for s in after), max(s.rss_mb for s in after)] if after else None
        ),
        "cpu_cores_mean": round(statistics.fmean(cpu), 3),
        "cpu_cores_by_third": [
            round(statistics.fmean([s.cpu_cores for s in third]), 3) if third else None
            for third in thirds
        ],
        "queues": queues,
        "growing_queues": growing,
        "tasks_mean_by_third": [round(statistics.fmean(t), 1) if t else None for t in tasks],
        "peer_connections_max": max(s.peer_connections for s in samples),
        "lesson_s": round(soak.lesson_s, 1),
        "archive_s": soak.archive.get("duration_s"),
        "archive_segments": len(soak.archive.get("segments", [])),
        "archive_lost_s": lost,
        "layers": layers,
        "loopback_frames_per_s": (
            round(soak.receivers.get("frames", 0) / max(soak.lesson_s, 1) / loopback, 2)
            if soak.receivers and loopback
            else None
        ),
        "loopback_decode_gaps": soak.receivers.get("gaps"),
        "loopback_damaged": soak.receivers.get("damaged"),
        "rural": soak.rural,
        "errors": soak.errors,
    }
    figures["verdict"] = {
        "memory_flat": growth is not None and abs(growth) <= TARGETS["memory_growth_pct"],
        "no_growing_queue": not growing,
        "no_archive_seconds_lost": lost is not None and lost <= TARGETS["archive_lost_s"],
    }
    return figures


def plot(soak: Soak, path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    minutes = [s.t / 60 for s in soak.samples]
    figure, (memory, cpu, queues) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    memory.plot(minutes, [s.rss_mb for s in soak.samples], label="server (all processes)")
    names = sorted({name for s in soak.samples for name in s.rss_by_process_mb})
    for name in names:
        memory.plot(
            minutes,
            [s.rss_by_process_mb.get(name, float("nan")) for s in soak.samples],
            label=name,
            linewidth=0.8,
        )
    memory.set_ylabel("RSS (MB)")
    memory.legend(fontsize="small")
    memory.axvline(WARMUP_S / 60, color="grey", linestyle=":")
    cpu.plot(minutes, [s.cpu_cores for s in soak.samples])
    cpu.set_ylabel("CPU (cores)")
    for name in QUEUES:
        queues.plot(minutes, [s.queued[name] for s in soak.samples], label=name)
    queues.plot(minutes, [s.tasks for s in soak.samples], label="asyncio tasks", linestyle="--")
    queues.set_ylabel("items waiting")
    queues.set_xlabel("minutes")
    queues.legend(fontsize="small")
    figure.suptitle("Soak: one teacher, 6 classrooms (2 on lossy shaped lines)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)
