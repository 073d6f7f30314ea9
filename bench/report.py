"""From rows to conclusions: least-squares slopes per mode, the stock/forward ratios,
a human summary and a plot."""

import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.point import FORWARD, FORWARD_AIORTC, OTHERS_NOTED, STOCK, Row


def least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float] | None:
    """(slope, intercept, r²) of y = intercept + slope·x, or None with < 2 distinct xs."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return slope, intercept, r2


def summarize(rows: Sequence[Row]) -> dict[str, Any]:
    """Per mode: marginal µs of server CPU per forwarded packet and CPU per subscriber
    (slopes over the rows that kept up), and the Ns that fell behind."""
    modes: dict[str, Any] = {}
    rows = [r for r in rows if r.lessons == 1]  # several lessons: see per_lesson()
    for mode in sorted({r.mode for r in rows}):
        mine = [r for r in rows if r.mode == mode]
        fit_rows = [r for r in mine if not r.fell_behind]
        per_packet = least_squares(
            [r.forwarded_pps for r in fit_rows], [r.server_cpu_cores for r in fit_rows]
        )
        in_kernel = least_squares(
            [r.forwarded_pps for r in fit_rows], [r.server_system_cores for r in fit_rows]
        )
        per_subscriber = least_squares(
            [float(r.n) for r in fit_rows], [r.server_cpu_cores for r in fit_rows]
        )
        behind = sorted({r.n for r in mine if r.fell_behind})
        kept_up = sorted({r.n for r in fit_rows})
        best = max(fit_rows, key=lambda r: r.forwarded_pps, default=None)
        modes[mode] = {
            "fitted_ns": kept_up,
            "fell_behind_ns": behind,
            "busy_machine_ns": sorted({r.n for r in mine if r.other_cpu_cores > OTHERS_NOTED}),
            "first_fell_behind_n": behind[0] if behind else None,
            "marginal_us_per_packet": _round(per_packet[0] * 1e6) if per_packet else None,
            "intercept_cores": _round(per_packet[1]) if per_packet else None,
            # of which the kernel (on loopback it also runs the receivers' UDP input)
            "marginal_kernel_us_per_packet": _round(in_kernel[0] * 1e6) if in_kernel else None,
            "fit_r2": _round(per_packet[2]) if per_packet else None,
            "cores_per_subscriber": _round(per_subscriber[0]) if per_subscriber else None,
            "peak_kept_up": {
                "n": best.n,
                "forwarded_pps": _round(best.forwarded_pps),
                "server_cpu_cores": _round(best.server_cpu_cores),
                "pps_per_core": _round(best.pps_per_core),
            }
            if best
            else None,
        }
    return modes


def per_lesson(rows: Sequence[Row]) -> dict[str, Any]:
    """Server CPU per lesson with several lessons at once over the CPU of one lesson
    alone, same mode and N (1.0: a lesson costs the same however many run; the
    workers put them on different cores)."""
    result: dict[str, Any] = {}
    for r in rows:
        if r.lessons == 1:
            continue
        alone = [a.server_cpu_cores for a in rows if (a.mode, a.n, a.lessons) == (r.mode, r.n, 1)]
        if alone and statistics.median(alone) > 0:
            result[f"{r.mode} N={r.n} x{r.lessons}"] = {
                "cores_per_lesson": _round(r.server_cpu_cores / r.lessons),
                "cores_one_lesson": _round(statistics.median(alone)),
                "ratio": _round(r.server_cpu_cores / r.lessons / statistics.median(alone), 3),
                "fell_behind": r.fell_behind,
            }
    return result


def ratios(rows: Sequence[Row], modes: dict[str, Any]) -> dict[str, Any]:
    """Stock over forward: of the marginal costs, and of the average µs per packet
    at each N both modes ran (median over repeats; where stock fell behind, its
    figure is for fewer packets than the stream holds)."""
    forward = modes.get(FORWARD, {})

    def ratio(key: str, mode: str = STOCK) -> float | None:
        a, b = modes.get(mode, {}).get(key), forward.get(key)
        return _round(a / b) if a and b and b > 0 else None

    same_n: dict[str, Any] = {}
    for n in sorted({r.n for r in rows}):
        f = [r.us_per_packet_avg for r in rows if r.mode == FORWARD and r.n == n]
        s = [r for r in rows if r.mode == STOCK and r.n == n]
        f_values = [v for v in f if v]
        s_values = [r.us_per_packet_avg for r in s if r.us_per_packet_avg]
        if f_values and s_values:
            same_n[str(n)] = {
                "ratio": _round(statistics.median(s_values) / statistics.median(f_values), 2),
                "stock_fell_behind": any(r.fell_behind for r in s),
            }
    return {
        "stock_over_forward_us_per_packet": ratio("marginal_us_per_packet"),
        "stock_over_forward_cores_per_subscriber": ratio("cores_per_subscriber"),
        "stock_over_forward_avg_us_per_packet_at_same_n": same_n,
        "aiortc_sender_over_fast_path_us_per_packet": ratio(
            "marginal_us_per_packet", FORWARD_AIORTC
        ),
        "per_lesson_several_over_one": per_lesson(rows),
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _times(row: Row) -> str:
    return "" if row.lessons == 1 else f" x{row.lessons} lessons"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def human_summary(rows: Sequence[Row], modes: dict[str, Any], ratio: dict[str, Any]) -> str:
    lines = [
        f"{'mode':<15}{'N':>4}{'server CPU':>12}{'kernel':>8}{'fwd pkt/s':>11}{'pkt/s/core':>12}"
        f"{'µs/pkt avg':>11}{'RSS MB':>8}{'fps/rx':>8}{'kbps/rx':>9}{'clients':>9}"
        f"{'others':>8}  notes"
    ]
    for r in rows:
        mode = r.mode if r.lessons == 1 else f"{r.mode} x{r.lessons}"
        lines.append(
            f"{mode:<15}{r.n:>4}{r.server_cpu_cores * 100:>11.1f}%"
            f"{r.server_system_cores * 100:>7.1f}%{r.forwarded_pps:>11.0f}"
            f"{_fmt(r.pps_per_core, '.0f'):>12}{_fmt(r.us_per_packet_avg, '.1f'):>11}"
            f"{r.server_rss_mb:>8.0f}{r.video_fps_per_receiver:>8.1f}"
            f"{r.video_kbps_per_receiver:>9.0f}{r.client_cpu_cores * 100:>8.0f}%"
            f"{r.other_cpu_cores * 100:>7.0f}%  {'; '.join(r.notes)}"
        )
    for r in rows:
        if r.latency_ms_p50 is not None:
            lines.append(
                f"latency {r.mode} N={r.n}{_times(r)}: in->out p50 {_fmt(r.latency_ms_p50, '.2f')} "
                f"p95 {_fmt(r.latency_ms_p95, '.2f')} p99 {_fmt(r.latency_ms_p99, '.2f')} ms; "
                f"loop lag p99 {_fmt(r.loop_lag_ms_p99, '.2f')} ms "
                f"(worst bucket {_fmt(r.loop_lag_ms_max_bucket, '.1f')} ms)"
            )
    for r in rows:
        if r.decode_receivers:
            lines.append(
                f"decoded {r.mode} N={r.n}{_times(r)}: {r.decoded_fps:.1f} numbered frames/s "
                f"per decoding receiver, {r.decode_damaged} damaged, {r.decode_gaps} gaps; "
                f"{r.missing_packets} packets missing at the counting receivers"
            )
    for mode, s in modes.items():
        lines.append(
            f"{mode}: marginal {_fmt(s['marginal_us_per_packet'], '.1f')} µs/packet "
            f"({_fmt(s['marginal_kernel_us_per_packet'], '.1f')} in the kernel; "
            f"r² {_fmt(s['fit_r2'], '.3f')}, fitted N={s['fitted_ns']}), "
            f"{_fmt((s['cores_per_subscriber'] or 0) * 100, '.2f')}% of a core per subscriber, "
            f"fell behind from N={s['first_fell_behind_n']}"
        )
    same_n = ", ".join(
        f"N={n}: {v['ratio']}x{' (stock fell behind)' if v['stock_fell_behind'] else ''}"
        for n, v in ratio["stock_over_forward_avg_us_per_packet_at_same_n"].items()
    )
    if ratio["aiortc_sender_over_fast_path_us_per_packet"] is not None:
        lines.append(
            f"our server, aiortc's sender path / fast path: "
            f"{ratio['aiortc_sender_over_fast_path_us_per_packet']:.2f}x per packet (marginal)"
        )
    for point, value in ratio["per_lesson_several_over_one"].items():
        lines.append(
            f"{point}: {value['cores_per_lesson'] * 100:.1f}% of a core per lesson, "
            f"{value['cores_one_lesson'] * 100:.1f}% for one alone: {value['ratio']}x"
        )
    lines.append(
        f"stock/forward: {_fmt(ratio['stock_over_forward_us_per_packet'], '.1f')}x per packet "
        f"(marginal), {_fmt(ratio['stock_over_forward_cores_per_subscriber'], '.1f')}x per "
        f"subscriber; average µs/packet at the same N: {same_n or '-'}"
    )
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: Path) -> str | None:
    """Server CPU against N for each mode; None, or why no plot was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    cores = os.cpu_count() or 1
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    styles = {
        FORWARD: ("tab:blue", "our forwarding server"),
        FORWARD_AIORTC: ("tab:green", "ours, through aiortc's sender"),
        STOCK: ("tab:red", "aiortc MediaRelay"),
    }
    for mode in sorted({r.mode for r in rows}):
        color, label = styles.get(mode, ("tab:gray", mode))
        mine = sorted((r for r in rows if r.mode == mode and r.lessons == 1), key=lambda r: r.n)
        ax.plot([r.n for r in mine], [r.server_cpu_cores * 100 for r in mine], "-", color=color)
        ok = [r for r in mine if not r.fell_behind]
        bad = [r for r in mine if r.fell_behind]
        ax.plot([r.n for r in ok], [r.server_cpu_cores * 100 for r in ok], "o", color=color,
                label=label)  # fmt: skip
        if bad:
            ax.plot([r.n for r in bad], [r.server_cpu_cores * 100 for r in bad], "x",
                    color=color, markersize=9, label=f"{label}: fell behind")  # fmt: skip
    ax.axhline(cores * 100, color="gray", linestyle="--", linewidth=1)
    ax.text(min(r.n for r in rows), cores * 100 + 3, f"all {cores} cores", color="gray")
    ax.set_xlabel("classrooms N (one 720p VP8 1.5 Mbps + Opus stream each)")
    ax.set_ylabel("server CPU, % of one core")
    ax.set_title("Fan-out: server CPU against subscribers")
    top = max([cores * 100.0] + [r.server_cpu_cores * 100 for r in rows])
    ax.set_ylim(0, top * 1.12)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None
