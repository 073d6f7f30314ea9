"""The server's notion of wall-clock time: what the timetable, the scheduler, the
attendance log, device health and join tokens read.

`SystemClock` is the real clock. `ManualClock` runs like it from a chosen instant
and can be moved forward by a test, so that a lesson scheduled for 08:00 can start,
run its 40 minutes and end within seconds of real time. Everything that depends on
the timetable reads the clock it was given, never `time.time()`.
"""

import asyncio
import time
from datetime import datetime, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC), like time.time()."""

    async def wait(self, seconds: float) -> None:
        """Sleep up to `seconds` of real time; a clock that is moved wakes sleepers
        early so that they look at the new time at once."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """Runs at real speed from `start` (unless `running` is false), plus whatever
    `advance()` adds."""

    def __init__(self, start: float, running: bool = True) -> None:
        self._start = start
        self._began = time.monotonic()
        self._running = running
        self._offset = 0.0
        self._moved = asyncio.Event()  # set when moved, then replaced for later sleepers

    def now(self) -> float:
        flowed = time.monotonic() - self._began if self._running else 0.0
        return self._start + flowed + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
        return self.now()

    def set(self, when: float) -> None:
        self.advance(max(0.0, when - self.now()))

    async def wait(self, seconds: float) -> None:
        # asyncio.wait, not wait_for: in Python 3.11 wait_for can turn a cancellation
        # that meets its timeout into a TimeoutError, and the sleeper never stops.
        moved = asyncio.ensure_future(self._moved.wait())
        try:
            await asyncio.wait({moved}, timeout=seconds)
        finally:
            moved.cancel()


def local(clock_time: float, zone: tzinfo) -> datetime:
    """An instant as a local date and time in `zone`."""
    return datetime.fromtimestamp(clock_time, zone)
