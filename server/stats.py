"""The figures a county is judged by, from the timetable and the attendance log.

Definitions (docs/operations.md repeats them for administrators):

- A scheduled lesson is *due* once its end time has passed; lessons not yet over
  are not counted.
- A due lesson was *held* when the 主讲 teacher was live (camera and microphone
  reaching the server) for at least `HELD_SHARE` of its scheduled time.
- 开课率 (the rate of lessons held) = held / due, by week, month or term.
- Hours: scheduled hours, and delivered hours (the teacher live within the
  scheduled time), per 主讲 teacher and per 主讲 classroom.
- Attendance of a receiving classroom: its lessons due, the lessons it attended
  (connected for at least `ATTENDED_SHARE` of the time), and its minutes connected
  within the scheduled time against the minutes scheduled.
- Network quality per classroom: its line checks over time, and the share of
  lesson time it received each layer of the teacher's camera, with the freezes
  and audio loss its page reported.

Everything here is arithmetic on plain values; `server/stats_report.py` fetches
them and shapes the tables.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from server.attendance import Interval
from server.timetable import Occurrence

HELD_SHARE = 0.5
ATTENDED_SHARE = 0.5
PERIODS = ("week", "month", "term")


def covered(spans: Iterable[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end) covered by the union of `spans`."""
    clipped = sorted((max(s, start), min(e, end)) for s, e in spans if e > start and s < end)
    total = 0.0
    reach = start
    for s, e in clipped:
        if e <= reach:
            continue
        total += e - max(s, reach)
        reach = e
    return total


def spans(
    intervals: Iterable[Interval], seat_kind: tuple[str | None, str]
) -> list[tuple[float, float]]:
    """The (start, end) of intervals of one kind; of one seat, or (None) any."""
    seat, kind = seat_kind
    return [(i.start, i.end) for i in intervals if i.kind == kind and seat in (None, i.seat)]


def delivered(occurrence: Occurrence, intervals: list[Interval]) -> float:
    """Seconds the teacher was live within the scheduled time."""
    return covered(spans(intervals, ("teacher", "live")), occurrence.starts, occurrence.ends)


def is_held(occurrence: Occurrence, intervals: list[Interval]) -> bool:
    scheduled = occurrence.ends - occurrence.starts
    return scheduled > 0 and delivered(occurrence, intervals) >= HELD_SHARE * scheduled


def connected(occurrence: Occurrence, classroom: str, intervals: list[Interval]) -> float:
    """Seconds a receiving classroom was connected within the scheduled time."""
    present = [
        (i.start, i.end) for i in intervals if i.kind == "present" and i.classroom == classroom
    ]
    return covered(present, occurrence.starts, occurrence.ends)


def period_of(day: date, period: str) -> str:
    """The week (its Monday), month or term a day belongs to. Terms: spring from
    February to July, autumn from August to January (named by its first year)."""
    if period == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    if period == "term":
        if 2 <= day.month <= 7:
            return f"{day.year}-spring"
        return f"{day.year if day.month >= 8 else day.year - 1}-autumn"
    raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")


def due(occurrences: Iterable[Occurrence], now: float) -> list[Occurrence]:
    return [o for o in occurrences if o.ends <= now]


@dataclass(frozen=True)
class RateRow:
    period: str
    scheduled: int
    held: int

    @property
    def rate(self) -> float | None:
        return self.held / self.scheduled if self.scheduled else None


def rate_by(
    occurrences: Iterable[Occurrence],
    intervals: dict[str, list[Interval]],
    now: float,
    period: str,
) -> list[RateRow]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for o in due(occurrences, now):
        key = period_of(date.fromisoformat(o.date), period)
        counts[key][0] += 1
        counts[key][1] += is_held(o, intervals.get(o.lesson, []))
    return [RateRow(key, c[0], c[1]) for key, c in sorted(counts.items())]


@dataclass(frozen=True)
class HoursRow:
    key: str  # a teacher's or a classroom's id
    lessons: int
    held: int
    scheduled_hours: float
    delivered_hours: float


def hours_by(
    occurrences: Iterable[Occurrence],
    intervals: dict[str, list[Interval]],
    now: float,
    key: str,
) -> list[HoursRow]:
    """Per 主讲 teacher (key "teacher") or 主讲 classroom (key "host")."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for o in due(occurrences, now):
        found = intervals.get(o.lesson, [])
        row = totals[getattr(o, key)]
        row[0] += 1
        row[1] += is_held(o, found)
        row[2] += (o.ends - o.starts) / 3600
        row[3] += delivered(o, found) / 3600
    return [
        HoursRow(k, int(v[0]), int(v[1]), round(v[2], 2), round(v[3], 2))
        for k, v in sorted(totals.items())
    ]


@dataclass(frozen=True)
class AttendanceRow:
    classroom: str
    lessons: int
    attended: int
    scheduled_minutes: float
    minutes: float

    @property
    def rate(self) -> float | None:
        return self.minutes / self.scheduled_minutes if self.scheduled_minutes else None


def attendance_by(
    occurrences: Iterable[Occurrence],
    intervals: dict[str, list[Interval]],
    now: float,
    classrooms: set[str] | None = None,
) -> list[AttendanceRow]:
    """Per receiving classroom (of `classrooms`, when given)."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for o in due(occurrences, now):
        scheduled = o.ends - o.starts
        for classroom in o.receivers:
            if classrooms is not None and classroom not in classrooms:
                continue
            seconds = connected(o, classroom, intervals.get(o.lesson, []))
            row = totals[classroom]
            row[0] += 1
            row[1] += seconds >= ATTENDED_SHARE * scheduled
            row[2] += scheduled / 60
            row[3] += seconds / 60
    return [
        AttendanceRow(k, int(v[0]), int(v[1]), round(v[2], 1), round(v[3], 1))
        for k, v in sorted(totals.items())
    ]


def layer_minutes(intervals: Iterable[Interval]) -> dict[str, dict[str, float]]:
    """Per classroom: minutes received on each layer (top, 360p, 180p, audio)."""
    found: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for i in intervals:
        if i.kind == "layer" and i.classroom is not None:
            found[i.classroom][i.value] += (i.end - i.start) / 60
    return {c: {k: round(v, 1) for k, v in layers.items()} for c, layers in found.items()}


def day_of(when: float, zone: tzinfo) -> date:
    return datetime.fromtimestamp(when, zone).date()
