"""The attendance and quality log: who was in each lesson, when, how well.

Per lesson and seat (a classroom, or the teacher), the log keeps intervals:

- `present`: connected to the lesson (from join to leave; a dropped line ends
  one interval and its return starts the next);
- `live`: media flowing (for the teacher: the lesson is live, their camera and
  microphone reach the server; for a classroom: its media connection is up);
- `layer`: receiving the teacher's camera on one layer (`value` is its name:
  top, 360p, 180p, or audio when video is paused).

It also keeps events (hands raised and lowered, classrooms brought on stage and
sent back) and the freezes and audio loss that classroom pages report.

`LessonWatcher` fills the log. It is one listener on each lesson's state
broadcast (server/lesson.py calls its listeners whenever something peers can see
changes, including every layer switch), and compares what it sees with what it
saw last time. Times come from the server's clock (server/clock.py).
"""

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.clock import Clock
from server.database import connect

if TYPE_CHECKING:
    from server.lesson import Lesson

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS attendance (
    id INTEGER PRIMARY KEY,
    lesson TEXT NOT NULL,
    seat TEXT NOT NULL,
    classroom TEXT,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('present', 'live', 'layer')),
    value TEXT NOT NULL DEFAULT '',
    start REAL NOT NULL,
    end REAL,
    last REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attendance_lesson ON attendance (lesson);
CREATE INDEX IF NOT EXISTS attendance_open ON attendance (end) WHERE end IS NULL;
CREATE TABLE IF NOT EXISTS lesson_events (
    lesson TEXT NOT NULL,
    seat TEXT NOT NULL,
    classroom TEXT,
    kind TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lesson_events_lesson ON lesson_events (lesson);
CREATE TABLE IF NOT EXISTS quality_reports (
    lesson TEXT NOT NULL,
    classroom TEXT NOT NULL,
    at REAL NOT NULL,
    freezes INTEGER NOT NULL,
    freeze_seconds REAL NOT NULL,
    audio_samples INTEGER NOT NULL,
    audio_concealed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS quality_reports_lesson ON quality_reports (lesson);
"""
EVENTS = ("hand_up", "hand_down", "stage_on", "stage_off")


@dataclass(frozen=True)
class Interval:
    lesson: str
    seat: str
    classroom: str | None
    role: str
    name: str
    kind: str
    value: str
    start: float
    end: float  # the last time known, for an interval still open


@dataclass(frozen=True)
class Event:
    lesson: str
    seat: str
    classroom: str | None
    kind: str
    at: float


@dataclass(frozen=True)
class QualityTotals:
    freezes: int
    freeze_seconds: float
    audio_samples: int
    audio_concealed: int

    @property
    def audio_loss(self) -> float:
        return self.audio_concealed / self.audio_samples if self.audio_samples else 0.0


class AttendanceLog:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def begin(
        self,
        lesson: str,
        seat: str,
        classroom: str | None,
        role: str,
        name: str,
        kind: str,
        value: str,
        at: float,
    ) -> int:
        cursor = self._db.execute(
            "INSERT INTO attendance (lesson, seat, classroom, role, name, kind, value, start, "
            "last) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (lesson, seat, classroom, role, name, kind, value, at, at),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def end(self, interval: int, at: float) -> None:
        self._db.execute(
            "UPDATE attendance SET end = MAX(start, ?), last = MAX(start, ?) WHERE id = ?",
            (at, at, interval),
        )

    def touch_open(self, at: float) -> None:
        """Note that the open intervals lasted until `at` (so that a crash loses
        at most the time since the last touch)."""
        self._db.execute(
            "UPDATE attendance SET last = ? WHERE end IS NULL AND start <= ?", (at, at)
        )

    def close_open(self) -> int:
        """After a restart: intervals left open end where they were last seen."""
        return self._db.execute("UPDATE attendance SET end = last WHERE end IS NULL").rowcount

    def event(self, lesson: str, seat: str, classroom: str | None, kind: str, at: float) -> None:
        self._db.execute(
            "INSERT INTO lesson_events (lesson, seat, classroom, kind, at) VALUES (?, ?, ?, ?, ?)",
            (lesson, seat, classroom, kind, at),
        )

    def report(
        self,
        lesson: str,
        classroom: str,
        at: float,
        freezes: int,
        freeze_seconds: float,
        audio_samples: int,
        audio_concealed: int,
    ) -> None:
        """What a classroom's page measured since its last report."""
        self._db.execute(
            "INSERT INTO quality_reports (lesson, classroom, at, freezes, freeze_seconds, "
            "audio_samples, audio_concealed) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (lesson, classroom, at, freezes, freeze_seconds, audio_samples, audio_concealed),
        )

    # -- reading -------------------------------------------------------------------

    def intervals(self, lessons: list[str]) -> list[Interval]:
        rows = self._in(
            "SELECT lesson, seat, classroom, role, name, kind, value, start, COALESCE(end, last) "
            "FROM attendance WHERE lesson IN ({}) ORDER BY start, id",
            lessons,
        )
        return [
            Interval(
                str(r[0]), str(r[1]), r[2], str(r[3]), str(r[4]), str(r[5]), str(r[6]), r[7], r[8]
            )
            for r in rows
        ]

    def events(self, lessons: list[str]) -> list[Event]:
        rows = self._in(
            "SELECT lesson, seat, classroom, kind, at FROM lesson_events WHERE lesson IN ({}) "
            "ORDER BY at, rowid",
            lessons,
        )
        return [Event(str(r[0]), str(r[1]), r[2], str(r[3]), float(r[4])) for r in rows]

    def quality(self, lessons: list[str]) -> dict[tuple[str, str], QualityTotals]:
        """Reported freezes and audio loss per (lesson, classroom)."""
        rows = self._in(
            "SELECT lesson, classroom, SUM(freezes), SUM(freeze_seconds), SUM(audio_samples), "
            "SUM(audio_concealed) FROM quality_reports WHERE lesson IN ({}) "
            "GROUP BY lesson, classroom",
            lessons,
        )
        return {
            (str(r[0]), str(r[1])): QualityTotals(int(r[2]), float(r[3]), int(r[4]), int(r[5]))
            for r in rows
        }

    def lessons_between(self, start: float, end: float) -> list[str]:
        """Every lesson with someone in it between start and end (scheduled or not)."""
        rows = self._db.execute(
            "SELECT DISTINCT lesson FROM attendance WHERE start < ? AND COALESCE(end, last) > ?",
            (end, start),
        )
        return [str(r[0]) for r in rows]

    def _in(self, sql: str, keys: list[str]) -> list[sqlite3.Row]:
        found: list[sqlite3.Row] = []
        for i in range(0, len(keys), 500):  # SQLite's limit on parameters
            chunk = keys[i : i + 500]
            found += self._db.execute(sql.format(", ".join("?" * len(chunk))), chunk).fetchall()
        return found


@dataclass
class _Seen:
    """What the watcher saw of one lesson last time."""

    intervals: dict[tuple[str, str, str], int]  # (seat, kind, value) -> interval id
    hands: set[str]
    stage: str | None


class LessonWatcher:
    """Fills the log from lessons' state broadcasts. `classroom_of(lesson, seat)`
    names the directory classroom in a seat, when it is known (kiosk pages)."""

    def __init__(
        self,
        log: AttendanceLog,
        clock: Clock,
        classroom_of: Callable[[str, str], str | None],
    ) -> None:
        self._log = log
        self._clock = clock
        self._classroom_of = classroom_of
        self._seen: dict[str, _Seen] = {}

    def watch(self, lesson: "Lesson") -> None:
        lesson.listeners.append(self._observe_safely)

    def _observe_safely(self, lesson: "Lesson") -> None:
        try:
            self.observe(lesson)
        except sqlite3.Error:  # the log must never break a lesson
            logger.exception("lesson=%s cannot write the attendance log", lesson.id)

    def observe(self, lesson: "Lesson") -> None:
        now = self._clock.now()
        seen = self._seen.setdefault(lesson.id, _Seen({}, set(), None))
        wanted: dict[tuple[str, str, str], tuple[str, str]] = {}  # -> (role, name)
        for peer in lesson.peers.values():
            if peer.role == "observer" or peer.closed:
                continue
            who = (peer.role, peer.name)
            wanted[(peer.seat, "present", "")] = who
            live = lesson.live if peer.role == "teacher" else peer.media_state == "connected"
            if live:
                wanted[(peer.seat, "live", "")] = who
            if peer.role == "classroom" and live:
                layer = _layer_of(peer.link_stats())
                if layer is not None:
                    wanted[(peer.seat, "layer", layer)] = who
        for key in [k for k in seen.intervals if k not in wanted]:
            self._log.end(seen.intervals.pop(key), now)
        for key, (role, name) in wanted.items():
            if key not in seen.intervals:
                seat, kind, value = key
                classroom = self._classroom_of(lesson.id, seat)
                seen.intervals[key] = self._log.begin(
                    lesson.id, seat, classroom, role, name, kind, value, now
                )
        self._floor_events(lesson, seen, now)
        if not seen.intervals and not lesson.peers:
            del self._seen[lesson.id]

    def _floor_events(self, lesson: "Lesson", seen: _Seen, now: float) -> None:
        hands = set(lesson.floor.hands)
        stage = lesson.floor.stage
        changes = [(seat, "hand_up") for seat in sorted(hands - seen.hands)]
        changes += [(seat, "hand_down") for seat in sorted(seen.hands - hands)]
        if stage != seen.stage:
            if seen.stage is not None:
                changes.append((seen.stage, "stage_off"))
            if stage is not None:
                changes.append((stage, "stage_on"))
        for seat, kind in changes:
            self._log.event(lesson.id, seat, self._classroom_of(lesson.id, seat), kind, now)
        seen.hands, seen.stage = hands, stage

    def close_all(self) -> None:
        """The server stops: every open interval ends now."""
        now = self._clock.now()
        for seen in self._seen.values():
            for interval in seen.intervals.values():
                self._log.end(interval, now)
        self._seen.clear()

    def touch(self) -> None:
        self._log.touch_open(self._clock.now())


def _layer_of(stats: dict[str, object]) -> str | None:
    if stats.get("quality") == "audio_only":
        return "audio"
    layer = stats.get("layer")
    return str(layer) if layer else None
