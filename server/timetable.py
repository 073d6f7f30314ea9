"""The timetable: scheduled 专递课堂 lessons.

An administrator asks for a `LessonPlan` (the 主讲 classroom and teacher, the
receiving classrooms, a day, a period and its times, the subject, the grade and a
title), which may repeat weekly. Each day it falls on becomes one `Occurrence`
with its own lesson id: one lesson, one recording, one library entry.

A plan that clashes with the timetable (a classroom or a teacher booked twice at
overlapping times) is refused with `Problem`s that name the clash; a batch (a
CSV import) is taken whole or not at all. Problems are catalog keys with values,
so that the admin page can show them in its language and the CLI in English.
"""

import secrets
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from server.database import connect, transaction
from server.i18n import translate

MAX_WEEKS = 53
SCHEMA = """
CREATE TABLE IF NOT EXISTS timetable (
    lesson TEXT PRIMARY KEY,
    series TEXT NOT NULL,
    title TEXT NOT NULL,
    subject TEXT NOT NULL REFERENCES subjects (name),
    grade TEXT NOT NULL DEFAULT '',
    teacher TEXT NOT NULL REFERENCES teachers (id),
    host TEXT NOT NULL REFERENCES classrooms (id),
    date TEXT NOT NULL,
    period INTEGER,
    start_time TEXT NOT NULL,
    end_time TEXT NOT NULL,
    starts REAL NOT NULL,
    ends REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS timetable_starts ON timetable (starts);
CREATE TABLE IF NOT EXISTS timetable_receivers (
    lesson TEXT NOT NULL REFERENCES timetable (lesson) ON DELETE CASCADE,
    classroom TEXT NOT NULL REFERENCES classrooms (id),
    PRIMARY KEY (lesson, classroom)
);
CREATE INDEX IF NOT EXISTS timetable_receivers_classroom ON timetable_receivers (classroom);
"""


@dataclass(frozen=True)
class Problem:
    """Why a plan was refused: a catalog key (timetable.problem.*) and its values."""

    key: str
    values: dict[str, object] = field(default_factory=dict)
    line: int | None = None

    def describe(self, language: str = "en") -> str:
        values = dict(self.values)
        if "start" in values:
            when_key = "timetable.when" if values.get("period") else "timetable.when_no_period"
            values["when"] = translate(language, when_key, **values)
        text = translate(language, f"timetable.problem.{self.key}", **values)
        if self.line is not None:
            return translate(language, "timetable.problem.line", line=self.line, text=text)
        return text


class TimetableError(Exception):
    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.describe() for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class LessonPlan:
    title: str
    subject: str
    grade: str
    teacher: str
    host: str
    receivers: tuple[str, ...]
    day: date
    start: time
    end: time
    period: int | None = None
    until: date | None = None  # repeat weekly up to this day (inclusive)
    line: int | None = None  # its line in an imported file

    def classrooms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.host, *self.receivers)))

    def days(self) -> list[date]:
        last = self.until or self.day
        count = (last - self.day).days // 7 + 1 if last >= self.day else 0
        return [self.day + timedelta(weeks=n) for n in range(count)]


@dataclass(frozen=True)
class Occurrence:
    lesson: str
    series: str
    title: str
    subject: str
    grade: str
    teacher: str
    host: str
    receivers: tuple[str, ...]
    date: str  # local YYYY-MM-DD
    period: int | None
    start_time: str  # local HH:MM
    end_time: str
    starts: float  # epoch seconds
    ends: float

    @property
    def classrooms(self) -> tuple[str, ...]:
        return (self.host, *self.receivers)

    def role_of(self, classroom: str) -> str | None:
        """How a classroom takes part: its kiosk joins as the teacher (主讲) or as a
        receiving classroom."""
        if classroom == self.host:
            return "teacher"
        return "classroom" if classroom in self.receivers else None

    def overlaps(self, other: "Occurrence") -> bool:
        return self.starts < other.ends and other.starts < self.ends

    def when(self) -> dict[str, object]:
        return {
            "date": self.date,
            "period": self.period or "",
            "start": self.start_time,
            "end": self.end_time,
        }


class Timetable:
    def __init__(self, path: Path, zone: tzinfo) -> None:
        self._db = connect(path, SCHEMA)
        self.zone = zone

    def close(self) -> None:
        self._db.close()

    # -- adding ------------------------------------------------------------------

    def add(self, plans: Iterable[LessonPlan], now: float) -> list[Occurrence]:
        """Schedule every plan, or none: raises TimetableError naming each problem
        (unknown names, bad times, clashes with the timetable or with each other)."""
        plans = list(plans)
        with transaction(self._db):
            problems: list[Problem] = []
            planned: list[tuple[LessonPlan, Occurrence]] = []
            for plan in plans:
                found = self._check(plan)
                problems += found
                if not found:
                    planned += [(plan, o) for o in self._expand(plan)]
            if not problems:
                problems += self._clashes(planned)
            if problems:
                raise TimetableError(problems)
            for _, occurrence in planned:
                self._insert(occurrence, now)
        return [o for _, o in planned]

    def _check(self, plan: LessonPlan) -> list[Problem]:
        line = plan.line
        problems = []
        if not plan.title.strip():
            problems.append(Problem("missing", {"column": "title"}, line))
        if self._teacher_name(plan.teacher) is None:
            problems.append(Problem("unknown_teacher", {"teacher": plan.teacher}, line))
        if not self._exists("SELECT 1 FROM subjects WHERE name = ?", plan.subject):
            problems.append(Problem("unknown_subject", {"subject": plan.subject}, line))
        for classroom in plan.classrooms():
            if self._classroom_name(classroom) is None:
                problems.append(Problem("unknown_classroom", {"classroom": classroom}, line))
        if not plan.receivers:
            problems.append(Problem("no_receivers", {}, line))
        if plan.host in plan.receivers:
            problems.append(Problem("host_receives", {"classroom": plan.host}, line))
        if len(set(plan.receivers)) != len(plan.receivers):
            problems.append(Problem("receiver_twice", {}, line))
        if plan.end <= plan.start:
            problems.append(
                Problem(
                    "bad_time",
                    {"start": plan.start.strftime("%H:%M"), "end": plan.end.strftime("%H:%M")},
                    line,
                )
            )
        if plan.until is not None and plan.until < plan.day:
            problems.append(Problem("until_before", {"until": plan.until.isoformat()}, line))
        elif len(plan.days()) > MAX_WEEKS:
            problems.append(Problem("too_many_weeks", {"weeks": MAX_WEEKS}, line))
        return problems

    def _expand(self, plan: LessonPlan) -> list[Occurrence]:
        series = secrets.token_hex(3)
        occurrences = []
        for day in plan.days():
            starts = datetime.combine(day, plan.start, self.zone).timestamp()
            ends = datetime.combine(day, plan.end, self.zone).timestamp()
            occurrences.append(
                Occurrence(
                    lesson=f"{series}-{day:%Y%m%d}",
                    series=series,
                    title=plan.title.strip(),
                    subject=plan.subject,
                    grade=plan.grade.strip(),
                    teacher=plan.teacher,
                    host=plan.host,
                    receivers=plan.receivers,
                    date=day.isoformat(),
                    period=plan.period,
                    start_time=plan.start.strftime("%H:%M"),
                    end_time=plan.end.strftime("%H:%M"),
                    starts=starts,
                    ends=ends,
                )
            )
        return occurrences

    def _clashes(self, planned: list[tuple[LessonPlan, Occurrence]]) -> list[Problem]:
        problems: list[Problem] = []
        by_date: dict[str, list[tuple[LessonPlan, Occurrence]]] = defaultdict(list)
        for plan, new in planned:
            for old in self.between(new.starts, new.ends):
                problems += self._clash(new, old, plan.line, None)
            for other_plan, other in by_date[new.date]:
                if other.overlaps(new):
                    problems += self._clash(new, other, plan.line, other_plan.line)
            by_date[new.date].append((plan, new))
        return problems

    def _clash(
        self, new: Occurrence, old: Occurrence, line: int | None, other_line: int | None
    ) -> list[Problem]:
        """Problems for each classroom and the teacher booked in both."""
        problems = []
        shared = [c for c in new.classrooms if c in old.classrooms]
        for classroom in shared:
            values = {
                **new.when(),
                "classroom": classroom,
                "classroom_name": self._classroom_name(classroom) or classroom,
            }
            problems.append(self._clash_problem("classroom_busy", values, old, line, other_line))
        if new.teacher == old.teacher:
            values = {
                **new.when(),
                "teacher": new.teacher,
                "teacher_name": self._teacher_name(new.teacher) or new.teacher,
            }
            problems.append(self._clash_problem("teacher_busy", values, old, line, other_line))
        return problems

    def _clash_problem(
        self,
        kind: str,
        values: dict[str, object],
        old: Occurrence,
        line: int | None,
        other_line: int | None,
    ) -> Problem:
        if other_line is not None:
            return Problem(f"{kind}_in_file", {**values, "other_line": other_line}, line)
        other = {
            "other": old.title,
            "lesson": old.lesson,
            "other_start": old.start_time,
            "other_end": old.end_time,
        }
        return Problem(kind, {**values, **other}, line)

    def _insert(self, o: Occurrence, now: float) -> None:
        self._db.execute(
            f"INSERT INTO timetable ({_COLUMNS}, created) VALUES ({', '.join('?' * 14)})",
            (
                o.lesson,
                o.series,
                o.title,
                o.subject,
                o.grade,
                o.teacher,
                o.host,
                o.date,
                o.period,
                o.start_time,
                o.end_time,
                o.starts,
                o.ends,
                now,
            ),
        )
        self._db.executemany(
            "INSERT INTO timetable_receivers (lesson, classroom) VALUES (?, ?)",
            [(o.lesson, c) for c in o.receivers],
        )

    # -- reading -----------------------------------------------------------------

    def get(self, lesson: str) -> Occurrence | None:
        found = self._select("WHERE lesson = ?", (lesson,))
        return found[0] if found else None

    def between(self, start: float, end: float) -> list[Occurrence]:
        """Lessons that overlap [start, end), by start time."""
        return self._select("WHERE starts < ? AND ends > ?", (end, start))

    def listing(
        self, start: float, end: float, school: str | None = None, classroom: str | None = None
    ) -> list[Occurrence]:
        """Lessons starting in [start, end); with `school`, those with a classroom of
        that school; with `classroom`, those of that classroom."""
        where = "WHERE starts >= ? AND starts < ?"
        args: list[object] = [start, end]
        rooms = (
            "(SELECT timetable.host UNION "
            "SELECT classroom FROM timetable_receivers r WHERE r.lesson = timetable.lesson)"
        )
        if school is not None:
            where += (
                f" AND EXISTS (SELECT 1 FROM classrooms c WHERE c.school = ? AND c.id IN {rooms})"
            )
            args.append(school)
        if classroom is not None:
            where += f" AND ? IN {rooms}"
            args.append(classroom)
        return self._select(where, tuple(args))

    def remove(self, lesson: str, series: bool = False) -> int:
        """Remove a lesson (or every lesson of its weekly series); how many went."""
        found = self.get(lesson)
        if found is None:
            return 0
        with transaction(self._db):
            if series:
                cursor = self._db.execute("DELETE FROM timetable WHERE series = ?", (found.series,))
            else:
                cursor = self._db.execute("DELETE FROM timetable WHERE lesson = ?", (lesson,))
        return cursor.rowcount

    def _select(self, where: str, args: tuple[object, ...]) -> list[Occurrence]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM timetable {where} ORDER BY starts, lesson", args
        ).fetchall()
        receivers: dict[str, list[str]] = defaultdict(list)
        if rows:
            marks = ", ".join("?" * len(rows))
            for lesson, classroom in self._db.execute(
                f"SELECT lesson, classroom FROM timetable_receivers WHERE lesson IN ({marks}) "
                "ORDER BY rowid",
                [r[0] for r in rows],
            ):
                receivers[str(lesson)].append(str(classroom))
        return [_occurrence(r, tuple(receivers[str(r[0])])) for r in rows]

    def _exists(self, sql: str, *args: object) -> bool:
        return self._db.execute(sql, args).fetchone() is not None

    def _classroom_name(self, classroom: str) -> str | None:
        row = self._db.execute("SELECT name FROM classrooms WHERE id = ?", (classroom,)).fetchone()
        return None if row is None else str(row[0])

    def _teacher_name(self, teacher: str) -> str | None:
        row = self._db.execute("SELECT name FROM teachers WHERE id = ?", (teacher,)).fetchone()
        return None if row is None else str(row[0])


_COLUMNS = (
    "lesson, series, title, subject, grade, teacher, host, date, period, start_time, "
    "end_time, starts, ends"
)


def _occurrence(row: sqlite3.Row | tuple[object, ...], receivers: tuple[str, ...]) -> Occurrence:
    lesson, series, title, subject, grade, teacher, host, day, period = row[:9]
    start_time, end_time, starts, ends = row[9:13]
    return Occurrence(
        lesson=str(lesson),
        series=str(series),
        title=str(title),
        subject=str(subject),
        grade=str(grade),
        teacher=str(teacher),
        host=str(host),
        receivers=receivers,
        date=str(day),
        period=int(period) if isinstance(period, int) else None,
        start_time=str(start_time),
        end_time=str(end_time),
        starts=float(starts),  # type: ignore[arg-type]
        ends=float(ends),  # type: ignore[arg-type]
    )
