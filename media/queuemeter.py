"""How long a subscriber's line queues, from its receiver reports.

Each report gives a delay sample: how far this report's delay sits above the least
seen over the last `MEMORY` seconds. The delay of the newest packet it acknowledges,
where the sender knows when that went out, is there on every report; the round trip
needs the sender's latest SR to have arrived, and on a queueing line it often has
not (two reports in a row without one, as the queue grew from +90 to +320 ms).

A receiver writes its report at a time of its own, after the newest packet arrived
and before the next one did: up to one frame's gap later (67 ms at 15 fps), which
reads as a queue that is not there. The sender knows that gap (`slack`: from sending
the newest packet to sending the next) and takes it off the sample; the least delay
is kept from the samples as they came.
"""

from collections import deque

MEMORY = 30.0  # seconds over which the least delay is kept
SAMPLES = 3  # reports (about 1 s apart) a lasting queue is judged over


class QueueMeter:
    def __init__(self) -> None:
        self._rtts: deque[tuple[float, float]] = deque()
        self._delays: deque[tuple[float, float]] = deque()
        self._samples: deque[float] = deque(maxlen=SAMPLES)
        self.lasting = 0.0  # seconds of queue over the last SAMPLES reports (the least)
        self.building = 0.0  # the same over the last two
        self.latest = 0.0  # the latest report's alone

    def add(self, now: float, delay: float | None, rtt: float | None, slack: float = 0.0) -> None:
        """A report: `delay`, from sending the newest packet it acknowledges to its
        arrival, and `slack`, from sending that packet to sending the next (how much
        of the delay may be the receiver waiting); and its round trip, if known."""
        sample = _above_least(self._delays, now, delay, slack)
        from_rtt = _above_least(self._rtts, now, rtt)
        if sample is None:
            sample = from_rtt
        if sample is None:
            return
        samples = self._samples
        samples.append(sample)
        # A queue that lasts: the least of the last few reports. One keyframe fills a
        # slow line's shaper for a moment (a 180p keyframe is 300 ms at 300 kbit/s);
        # that drains by itself and is no reason to go down.
        self.lasting = min(samples)
        self.building = min(list(samples)[-2:])
        self.latest = sample


def _above_least(
    samples: deque[tuple[float, float]], now: float, value: float | None, slack: float = 0.0
) -> float | None:
    """Add `value` (seconds) to `samples`, and return how far it is, less `slack`,
    above the least of the last `MEMORY` seconds; None without a value."""
    if value is None or value < 0:
        return None
    samples.append((now, value))
    while samples and samples[0][0] < now - MEMORY:
        samples.popleft()
    return max(0.0, value - slack - min(v for _, v in samples))
