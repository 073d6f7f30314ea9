"""Keyframe requests to a publisher, coalesced to at most one per interval.

Many subscribers losing packets at once must not become a PLI storm: mediasoup and
LiveKit pass on at most about one request a second. A request inside the quiet
interval is not dropped: one PLI goes out when the interval ends, unless a keyframe
arrived meanwhile.
"""

import asyncio
import time
from collections.abc import Callable


class KeyframeRequester:
    def __init__(
        self,
        send: Callable[[], None],
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._min_interval = min_interval
        self._clock = clock
        self._last_sent: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.requested = 0
        self.sent = 0

    @property
    def pending(self) -> bool:
        return self._timer is not None

    def request(self) -> None:
        self.requested += 1
        if self._timer is not None:
            return
        now = self._clock()
        if self._last_sent is None or now - self._last_sent >= self._min_interval:
            self._fire()
        else:
            delay = self._last_sent + self._min_interval - now
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def keyframe_arrived(self) -> None:
        """A keyframe satisfies every request that is still waiting."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.keyframe_arrived()

    def _fire(self) -> None:
        self._timer = None
        self._last_sent = self._clock()
        self.sent += 1
        self._send()
