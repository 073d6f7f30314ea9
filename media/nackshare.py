"""The share of the packets sent lately that a subscriber NACKed.

Fed with running totals (packets sent, packets NACKed, each sequence number once)
whenever NACKs come. NACKs come only with loss, so the window starts at the first
NACK within it, not at one from a loss long ago (that measured 2 % for a probe
losing half its packets).
"""

from collections import deque

WINDOW = 1.0  # seconds of NACKs weighed against the packets sent
SPAN = 0.15  # ...once the window spans this much
MIN_NACKED = 10  # newly NACKed packets in the window before the share means anything


class NackShare:
    def __init__(self) -> None:
        # (when, packets sent so far, packets newly NACKed so far)
        self._totals: deque[tuple[float, int, int]] = deque()
        self.share = 0.0

    def add(self, now: float, packets_sent: int, nacked: int) -> None:
        totals = self._totals
        totals.append((now, packets_sent, nacked))
        while len(totals) > 1 and totals[0][0] < now - WINDOW:
            totals.popleft()
        first, last = totals[0], totals[-1]
        sent, asked = last[1] - first[1], last[2] - first[2]
        if last[0] - first[0] >= SPAN and asked >= MIN_NACKED and sent > 0:
            self.share = min(1.0, asked / sent)
        else:
            self.share = 0.0

    def since(self, now: float, seconds: float, base: tuple[int, int]) -> tuple[int, int]:
        """(packets sent, packets NACKed) over the last `seconds`, or since the totals
        `base` if those are later."""
        for when, sent, nacked in self._totals:
            if when < now - seconds and sent >= base[0]:
                base = (sent, nacked)
        _, sent, nacked = self._totals[-1]
        return sent - base[0], nacked - base[1]

    def restart(self) -> None:
        """Count afresh from the last NACK on (a switch changed the layer)."""
        if self._totals:
            self._totals = deque([self._totals[-1]])
        self.share = 0.0
