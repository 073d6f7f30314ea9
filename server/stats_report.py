"""The statistics as tables: the rows behind each chart, its CSV and its API.

Each report takes a date range (local days, inclusive), a period (week, month or
term, for the reports over time) and a school scope (a school administrator's
school, or the whole county), and gives columns, rows and what to chart.
"""

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from server.attendance import Interval
from server.county import County
from server.stats import (
    attendance_by,
    day_of,
    due,
    hours_by,
    is_held,
    layer_minutes,
    period_of,
    rate_by,
)
from server.timetable import Occurrence

REPORTS = ("rate", "teachers", "hosts", "receivers", "network", "views")
LAYERS = ("top", "360p", "180p", "audio")


@dataclass(frozen=True)
class Range:
    first: date
    last: date  # inclusive
    period: str = "week"
    school: str | None = None  # None: the whole county


@dataclass
class Report:
    name: str
    columns: list[str]
    rows: list[dict[str, Any]]
    # what to draw: "bars" of (label column, value column), or "lines" of series
    chart: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Data:
    """What every report reads: the range, its lessons and their attendance."""

    span: Range
    start: float  # the range in epoch seconds
    end: float
    occurrences: list[Occurrence]
    intervals: dict[str, list[Interval]]  # by lesson


class Reports:
    def __init__(self, county: County, now: float) -> None:
        self.county = county
        self.now = now

    def build(self, name: str, span: Range) -> Report:
        if name not in REPORTS:
            raise ValueError(f"unknown report {name!r}")
        zone = self.county.zone
        start = datetime.combine(span.first, time(0), zone).timestamp()
        end = datetime.combine(span.last + timedelta(days=1), time(0), zone).timestamp()
        occurrences = self.county.timetable.listing(start, end, school=span.school)
        data = _Data(span, start, end, occurrences, self._intervals(occurrences))
        build: Callable[[_Data], Report] = getattr(self, f"_{name}")
        return build(data)

    def _intervals(self, occurrences: list[Occurrence]) -> dict[str, list[Interval]]:
        found: dict[str, list[Interval]] = defaultdict(list)
        for interval in self.county.attendance.intervals([o.lesson for o in occurrences]):
            found[interval.lesson].append(interval)
        return found

    def _school_of(self) -> dict[str, str]:
        """Classroom and teacher ids to their school's id."""
        directory = self.county.directory
        owners = {c.id: c.school for c in directory.classrooms()}
        owners.update({f"teacher:{t.id}": t.school for t in directory.teachers()})
        return owners

    def _rate(self, data: _Data) -> Report:
        span, occurrences, intervals = data.span, data.occurrences, data.intervals
        rows = [
            {
                "period": r.period,
                "scheduled": r.scheduled,
                "held": r.held,
                "rate": _percent(r.rate),
            }
            for r in rate_by(occurrences, intervals, self.now, span.period)
        ]
        return Report(
            "rate",
            ["period", "scheduled", "held", "rate"],
            rows,
            {"kind": "bars", "label": "period", "value": "rate", "max": 100, "unit": "%"},
        )

    def _teachers(self, data: _Data) -> Report:
        span, occurrences, intervals = data.span, data.occurrences, data.intervals
        names = {t.id: t for t in self.county.directory.teachers()}
        schools = {s.id: s.name for s in self.county.directory.schools()}
        rows = []
        for r in hours_by(occurrences, intervals, self.now, "teacher"):
            teacher = names.get(r.key)
            if span.school is not None and (teacher is None or teacher.school != span.school):
                continue
            rows.append(
                {
                    "teacher": r.key,
                    "name": teacher.name if teacher else r.key,
                    "school": schools.get(teacher.school, "") if teacher else "",
                    **_hours(r),
                }
            )
        return Report("teachers", ["teacher", "name", "school", *HOURS], rows, _hours_chart())

    def _hosts(self, data: _Data) -> Report:
        span, occurrences, intervals = data.span, data.occurrences, data.intervals
        rows = []
        for r in hours_by(occurrences, intervals, self.now, "host"):
            row = self._classroom_row(r.key, span)
            if row is not None:
                rows.append({**row, **_hours(r)})
        return Report("hosts", ["classroom", "name", "school", *HOURS], rows, _hours_chart())

    def _receivers(self, data: _Data) -> Report:
        span, occurrences, intervals = data.span, data.occurrences, data.intervals
        rows = []
        for r in attendance_by(occurrences, intervals, self.now):
            row = self._classroom_row(r.classroom, span)
            if row is None:
                continue
            rows.append(
                {
                    **row,
                    "lessons": r.lessons,
                    "attended": r.attended,
                    "scheduled_minutes": r.scheduled_minutes,
                    "minutes": r.minutes,
                    "rate": _percent(r.rate),
                }
            )
        columns = ["classroom", "name", "school", "lessons", "attended", "scheduled_minutes"]
        return Report(
            "receivers",
            [*columns, "minutes", "rate"],
            rows,
            {"kind": "bars", "label": "name", "value": "rate", "max": 100, "unit": "%"},
        )

    def _network(self, data: _Data) -> Report:
        span, occurrences, intervals = data.span, data.occurrences, data.intervals
        start, end = data.start, data.end
        checks = [c for c in self.county.checks.history(since=start, limit=100_000) if c.at < end]
        every = [i for found in intervals.values() for i in found]
        layers = layer_minutes(every)
        quality = self.county.attendance.quality([o.lesson for o in occurrences])
        reported: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0, 0])
        for (_, classroom), totals in quality.items():
            sums = reported[classroom]
            sums[0] += totals.freezes
            sums[1] += totals.freeze_seconds
            sums[2] += totals.audio_samples
            sums[3] += totals.audio_concealed
        by_classroom: dict[str, list[Any]] = defaultdict(list)
        for check in checks:
            by_classroom[check.classroom].append(check)
        rows = []
        series = []
        for classroom in sorted(set(by_classroom) | set(layers) | set(reported)):
            row = self._classroom_row(classroom, span)
            if row is None:
                continue
            mine = sorted(by_classroom.get(classroom, []), key=lambda c: c.at)
            minutes = layers.get(classroom, {})
            lesson_minutes = sum(minutes.values())
            sums = reported.get(classroom, [0, 0.0, 0, 0])
            rows.append(
                {
                    **row,
                    "checks": len(mine),
                    "down_mbps": _mbps(statistics.median(c.down_bps for c in mine))
                    if mine
                    else None,
                    "up_mbps": _mbps(statistics.median(c.up_bps for c in mine)) if mine else None,
                    "rtt_ms": _median([c.rtt_ms for c in mine]),
                    "loss": _percent(_median([c.loss for c in mine])),
                    **{
                        f"share_{layer}": _percent(minutes.get(layer, 0) / lesson_minutes)
                        if lesson_minutes
                        else None
                        for layer in LAYERS
                    },
                    "freezes": int(sums[0]),
                    "freeze_seconds": round(sums[1], 1),
                    "audio_loss": _percent(sums[3] / sums[2]) if sums[2] else None,
                }
            )
            if mine:
                series.append(
                    {
                        "name": row["name"],
                        "points": [[c.at, _mbps(c.down_bps)] for c in mine],
                    }
                )
        columns = ["classroom", "name", "school", "checks", "down_mbps", "up_mbps", "rtt_ms"]
        columns += ["loss", *(f"share_{layer}" for layer in LAYERS)]
        columns += ["freezes", "freeze_seconds", "audio_loss"]
        chart = {"kind": "lines", "series": series, "unit": "Mbps", "start": start, "end": end}
        return Report("network", columns, rows, chart)

    def _views(self, data: _Data) -> Report:
        span, occurrences, start, end = data.span, data.occurrences, data.start, data.end
        allowed: set[str] | None = None
        if span.school is not None:
            owners = self._school_of()
            allowed = {o.lesson for o in occurrences if owners.get(o.host) == span.school}
        counts: dict[str, int] = defaultdict(int)
        for lesson, at in self.county.views.between(start, end):
            if allowed is None or lesson in allowed:
                counts[period_of(day_of(at, self.county.zone), span.period)] += 1
        rows = [{"period": key, "views": count} for key, count in sorted(counts.items())]
        return Report(
            "views",
            ["period", "views"],
            rows,
            {"kind": "bars", "label": "period", "value": "views"},
        )

    def _classroom_row(self, classroom: str, span: Range) -> dict[str, Any] | None:
        found = self.county.directory.classroom(classroom)
        if span.school is not None and (found is None or found.school != span.school):
            return None
        school = self.county.directory.school(found.school) if found else None
        return {
            "classroom": classroom,
            "name": found.name if found else classroom,
            "school": school.name if school else "",
        }


HOURS = ("lessons", "held", "scheduled_hours", "delivered_hours")


def _hours(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in HOURS}


def _hours_chart() -> dict[str, Any]:
    return {"kind": "bars", "label": "name", "value": "delivered_hours", "unit": "h"}


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _mbps(bps: float) -> float:
    return round(bps / 1e6, 2)


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 4) if known else None


def held_lessons(
    occurrences: list[Occurrence], intervals: dict[str, list[Interval]], now: float
) -> set[str]:
    """The lessons (ids) that were held, of those due."""
    return {o.lesson for o in due(occurrences, now) if is_held(o, intervals.get(o.lesson, []))}
