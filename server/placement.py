"""Which worker holds which lesson: one lesson on one worker, for its whole life.

A new lesson goes to the worker with the fewest lessons. Its place is kept while
anyone is connected and for the reconnection grace after the last one leaves, so
that a reloading page comes back to the same worker and the same seats. This table
is the one thing a placement across machines (e.g. through Redis) would replace.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass
class Place:
    worker: int
    connections: int = 0
    idle_since: float | None = None


class Placement:
    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._grace = grace
        self._clock = clock
        self._places: dict[str, Place] = {}

    def place(self, lesson: str, alive: Sequence[int]) -> int:
        """The worker for `lesson` (among the `alive` ones), counting one more
        connection to it."""
        self._expire()
        place = self._places.get(lesson)
        if place is None or place.worker not in alive:
            load = {w: 0 for w in alive}
            for other in self._places.values():
                if other.worker in load:
                    load[other.worker] += 1
            worker = min(alive, key=lambda w: (load[w], w))
            place = self._places[lesson] = Place(worker)
        place.connections += 1
        place.idle_since = None
        return place.worker

    def release(self, lesson: str) -> None:
        place = self._places.get(lesson)
        if place is None:
            return
        place.connections = max(0, place.connections - 1)
        if place.connections == 0:
            place.idle_since = self._clock()

    def worker_of(self, lesson: str) -> int | None:
        place = self._places.get(lesson)
        return place.worker if place is not None else None

    def forget_worker(self, worker: int) -> None:
        """A worker died: its lessons go elsewhere when their pages reconnect."""
        for lesson in [k for k, p in self._places.items() if p.worker == worker]:
            del self._places[lesson]

    def lessons(self) -> dict[str, int]:
        self._expire()
        return {lesson: place.worker for lesson, place in self._places.items()}

    def _expire(self) -> None:
        now = self._clock()
        for lesson, place in list(self._places.items()):
            if place.idle_since is not None and now - place.idle_since > self._grace:
                del self._places[lesson]
