"""The loss a subscriber's receiver reports show over the last few seconds.

One report's fraction lost is noisy. The cumulative count lost and the highest
sequence number of the first and the last report in the window give the loss over
the window, once enough packets were expected for it to mean anything.
"""

from collections import deque

MIN_PACKETS = 20  # packets expected in the window before its loss means anything


class LossWindow:
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._reports: deque[tuple[float, int, int]] = deque()  # (when, highest, lost)
        self.loss = 0.0

    @property
    def highest(self) -> int | None:
        """The highest sequence number the last report gave."""
        return self._reports[-1][1] if self._reports else None

    def add(self, now: float, highest: int, lost: int) -> None:
        """A report: the highest sequence number received, and the packets lost in all."""
        reports = self._reports
        if reports and highest < reports[-1][1]:
            reports.clear()  # sequence numbers restarted (a new sender)
        reports.append((now, highest, lost))
        while len(reports) > 2 and reports[1][0] <= now - self._seconds:
            reports.popleft()
        first, last = reports[0], reports[-1]
        expected = last[1] - first[1]
        if expected >= MIN_PACKETS:
            self.loss = min(1.0, max(0.0, (last[2] - first[2]) / expected))
        elif len(reports) == 1:
            self.loss = 0.0

    def clear(self) -> None:
        """Count from the next report on."""
        self._reports.clear()

    def restart(self) -> None:
        """Count from the last report on."""
        if self._reports:
            self._reports = deque([self._reports[-1]])
        self.loss = 0.0
