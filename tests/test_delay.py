"""The delay histograms behind /metrics and bench/fanout.py's latency figures."""

import asyncio
import time

from media.delay import DelayHistogram, quantile
from server.looplag import probe


def test_quantiles_come_from_the_buckets_the_delays_fell_in() -> None:
    histogram = DelayHistogram()
    for _ in range(90):
        histogram.record(0.0008)  # in (0.5, 1] ms
    for _ in range(10):
        histogram.record(0.04)  # in (30, 50] ms
    cumulative = [(float(b), float(c)) for b, c in histogram.cumulative()]
    assert cumulative[-1] == (float("inf"), 100.0)
    p50 = quantile(cumulative, 0.5)
    p95 = quantile(cumulative, 0.95)
    assert p50 is not None and 0.0005 < p50 <= 0.001
    assert p95 is not None and 0.03 < p95 <= 0.05
    assert quantile([(0.001, 0.0), (float("inf"), 0.0)], 0.5) is None
    histogram.record(5.0)  # beyond every bound: reported as the last finite one
    assert quantile([(float(b), float(c)) for b, c in histogram.cumulative()], 1.0) == 1.0


async def test_the_probe_sees_a_loop_that_was_blocked() -> None:
    histogram = DelayHistogram()
    task = asyncio.create_task(probe(histogram, interval=0.01))
    await asyncio.sleep(0.05)
    time.sleep(0.12)  # noqa: ASYNC251 (the point: the loop is stuck for 120 ms)
    await asyncio.sleep(0.05)
    task.cancel()
    bounds = (*histogram.bounds, float("inf"))
    worst = max(bound for bound, count in zip(bounds, histogram.counts, strict=True) if count)
    assert worst >= 0.1, histogram.counts
