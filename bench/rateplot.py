"""The rural benchmark's plot: the line's capacity, the server's estimate of it, and
the bitrate offered to and delivered over the line, against time; the layer below."""

from collections.abc import Sequence
from pathlib import Path

from bench.capacity import Sample


def plot(samples: Sequence[Sample], path: Path, title: str) -> str | None:
    """Write a PNG; returns None, or why no plot was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    if not samples:
        return "no samples"
    t = [s.t for s in samples]
    fig, (rates, layers) = plt.subplots(
        2, 1, figsize=(9, 6), dpi=120, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    kbps = 1000.0
    rates.step(t, [s.capacity_bps / kbps for s in samples], where="post", color="black",
               linewidth=2, label="capacity (tbf)")  # fmt: skip
    rates.plot(t, [(s.estimate_bps or float("nan")) / kbps for s in samples], color="tab:orange",
               label="server's estimate (link stats)")  # fmt: skip
    rates.plot(t, [s.offered_bps / kbps for s in samples], color="tab:red", alpha=0.6,
               linewidth=1, label="offered by the server (RTP + RTX + overheads)")  # fmt: skip
    rates.plot(t, [s.delivered_bps / kbps for s in samples], color="tab:blue",
               label="delivered by the line")  # fmt: skip
    rates.set_ylabel("kbit/s")
    top = max(max(s.capacity_bps for s in samples), *(s.delivered_bps for s in samples))
    rates.set_ylim(0, top / kbps * 1.25)
    peak = max(samples, key=lambda s: s.offered_bps)
    if peak.offered_bps > top * 1.25:
        rates.text(
            0.99,
            0.97,
            f"offered (clipped) peaks at {peak.offered_bps / 1e6:.1f} Mbit/s, t={peak.t:.0f} s",
            transform=rates.transAxes,
            color="tab:red",
            fontsize=8,
            ha="right",
            va="top",
        )
    rates.legend(loc="upper left", fontsize=8)
    rates.grid(alpha=0.3)
    rates.set_title(title)

    names = ["audio only"]
    for sample in samples:
        if sample.layer is not None and sample.layer_index is not None:
            while len(names) <= sample.layer_index + 1:
                names.append("")
            names[sample.layer_index + 1] = sample.layer
    level = [0 if s.layer_index is None else len(names) - 1 - s.layer_index for s in samples]
    layers.step(t, level, where="post", color="tab:green")
    layers.set_yticks(range(len(names)))
    layers.set_yticklabels([names[0], *reversed(names[1:])])
    layers.set_ylabel("layer")
    layers.set_xlabel("seconds")
    layers.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return None
