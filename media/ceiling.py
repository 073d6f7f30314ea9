"""What a subscriber's line carried when it last congested, grown with time since.

Congestion leaves a ceiling: under heavy loss, what got through; with a queue,
what was being sent. A probe to a layer above it waits until it has grown past
that layer: it doubles every `DOUBLING` seconds, and a clean line's REMB lifts it.
A 300 kbit/s line that the top layer flooded does not try the 450 kbit/s layer ten
seconds later and freeze again (measured: 4-5 s of freezes in 25 s from one such
probe). Grown 64 times, it is forgotten.
"""

DOUBLING = 60.0  # seconds for a measured ceiling to double


class Ceiling:
    def __init__(self) -> None:
        self._measured: tuple[float, float] | None = None  # (bps, when)

    def at(self, now: float) -> float | None:
        if self._measured is None:
            return None
        bps, when = self._measured
        grown = bps * 2 ** ((now - when) / DOUBLING)
        if grown > 64 * bps:
            self._measured = None
            return None
        return grown

    def lower(self, now: float, measured: float) -> None:
        """Congestion measured the line at `measured` bits per second."""
        if measured <= 0:
            return  # nothing measured (no rate yet): a ceiling of 0 would never grow
        current = self.at(now)
        if current is None or measured < current:
            self._measured = (measured, now)

    def lift(self, now: float, bps: float) -> None:
        """The line carries `bps` now, and more."""
        self._measured = (bps, now)
