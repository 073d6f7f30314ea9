"""Running the timetable: lessons open early, record from their start time, and
end at their end time. The scheduler reads only the server's clock.

- Open: from `open_early` minutes before the start, kiosk pages get join links
  (server/room.py). A scheduled lesson opened before its start does not record:
  that is the sound check.
- Start: recording turns on (unless recording is off in the settings).
- End: every peer is told `lesson_ended` and leaves; the lesson closes, and with
  it its recording, which goes to the library with the timetable's title,
  subject, grade, teacher and school.
"""

import asyncio
import logging
import time

from server.clock import Clock
from server.county import County
from server.lesson import Lesson
from server.lessons import Lessons
from server.timetable import Occurrence

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
TOUCH_EVERY = 30  # ticks between notes of how long open attendance lasted


class Scheduler:
    def __init__(
        self,
        county: County,
        lessons: Lessons,
        clock: Clock,
        *,
        open_early: float,
        record: bool,
    ) -> None:
        self._county = county
        self._lessons = lessons
        self._clock = clock
        self.open_early = open_early
        self._record = record
        self._started: set[str] = set()  # lessons whose recording was turned on
        self._task: asyncio.Task[None] | None = None

    # -- what is on --------------------------------------------------------------

    def opens(self, occurrence: Occurrence) -> float:
        return occurrence.starts - self.open_early

    def is_open(self, occurrence: Occurrence, now: float) -> bool:
        return self.opens(occurrence) <= now < occurrence.ends

    def state(self, occurrence: Occurrence, now: float) -> str:
        """upcoming, open (before its start: the sound check), on, or over."""
        if now >= occurrence.ends:
            return "over"
        if now >= occurrence.starts:
            return "on"
        return "open" if now >= self.opens(occurrence) else "upcoming"

    def current(self, classroom: str, now: float) -> Occurrence | None:
        """The classroom's lesson open now, if any (the earliest, should two touch)."""
        for occurrence in self._county.timetable.between(now, now + self.open_early + 1):
            if classroom in occurrence.classrooms and self.is_open(occurrence, now):
                return occurrence
        return None

    # -- hooks -------------------------------------------------------------------

    def lesson_opened(self, lesson: Lesson) -> None:
        """Lessons.opened: a scheduled lesson opened before its start waits to record."""
        occurrence = self._county.timetable.get(lesson.id)
        if occurrence is not None and self._clock.now() < occurrence.starts:
            lesson.record = False

    # -- the loop ----------------------------------------------------------------

    def start(self, close_open: bool = True) -> None:
        """Start the loop. `close_open` ends attendance left open by a previous run;
        a media worker that restarts leaves that to the front process, since other
        workers' lessons are open."""
        if self._task is None:
            if close_open:
                self._county.attendance.close_open()
            self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        count = 0
        while True:
            try:
                await self.tick()
                count += 1
                if count % TOUCH_EVERY == 0:
                    self._county.attendance.touch_open(self._clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the scheduler's tick failed")
            await self._clock.wait(TICK_SECONDS)

    async def tick(self) -> None:
        now = self._clock.now()
        for lesson in list(self._lessons):
            occurrence = self._county.timetable.get(lesson.id)
            if occurrence is None:
                continue
            if now >= occurrence.ends:
                logger.info("lesson=%s its time is over", lesson.id)
                self._started.discard(lesson.id)
                started = time.monotonic()
                await self._lessons.end(lesson.id)
                logger.info("lesson=%s ended in %.1f s", lesson.id, time.monotonic() - started)
            elif now >= occurrence.starts and lesson.id not in self._started:
                self._started.add(lesson.id)
                if self._record and not lesson.record:
                    logger.info("lesson=%s starts: recording", lesson.id)
                    await lesson.set_recording(True)
