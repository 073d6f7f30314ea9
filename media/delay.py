"""Delay histograms kept by the media path itself, cheap enough for every frame.

Two are kept per process: `FORWARD_DELAY`, from a publisher's RTP packet reaching
its receiver (after SRTP) to the frame's last packet handed to the socket for its
last subscriber, the server's added latency; and `LOOP_LAG`, how late the event
loop runs a timer. /metrics exports both as Prometheus histograms, and the worker
processes' are summed bucket by bucket.
"""

from bisect import bisect_left

# Upper bounds in seconds: fine below 10 ms (the forwarding target), coarse above.
BOUNDS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02,
    0.03, 0.05, 0.1, 0.2, 0.5, 1.0,
)  # fmt: skip


class DelayHistogram:
    def __init__(self, bounds: tuple[float, ...] = BOUNDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.total = 0.0
        self.count = 0

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or under it), ending with +inf."""
        result = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


def quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated within its bucket
    (the upper bound of the last finite bucket when it falls above all of them)."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    target = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= target:
            if bound == float("inf"):
                return lower_bound
            share = (target - lower_count) / (count - lower_count) if count > lower_count else 1
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


FORWARD_DELAY = DelayHistogram()
LOOP_LAG = DelayHistogram()
