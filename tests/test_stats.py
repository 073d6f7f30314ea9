"""The statistics' arithmetic, the line check's starting layer, the charts, and the
login throttle and password hashing, without a server."""

from datetime import date

import pytest

from server.admins import check_password, hash_password
from server.attendance import Interval
from server.charts import bars, nice_max
from server.linecheck import starting_layer
from server.login import LoginThrottle
from server.stats import (
    attendance_by,
    covered,
    hours_by,
    is_held,
    period_of,
    rate_by,
)
from server.timetable import Occurrence

HOUR = 3600.0


def lesson(
    name: str,
    start: float,
    minutes: float = 40,
    receivers: tuple[str, ...] = ("a", "b"),
    teacher: str = "wang",
) -> Occurrence:
    return Occurrence(
        lesson=name,
        series="s",
        title=name,
        subject="音乐",
        grade="",
        teacher=teacher,
        host="h",
        receivers=receivers,
        date="2026-03-02",
        period=None,
        start_time="08:00",
        end_time="08:40",
        starts=start,
        ends=start + minutes * 60,
    )


def interval(
    lesson: str, seat: str, kind: str, start: float, end: float, classroom: str | None = None
) -> Interval:
    return Interval(lesson, seat, classroom, "classroom", seat, kind, "", start, end)


@pytest.mark.timeout(5)
def test_covered_time_is_the_union_clipped_to_the_window() -> None:
    assert covered([(0, 10), (5, 15), (20, 30)], 0, 100) == 25
    assert covered([(-50, 10), (90, 150)], 0, 100) == 20
    assert covered([(0, 100), (10, 20)], 0, 100) == 100
    assert covered([], 0, 100) == 0
    assert covered([(200, 300)], 0, 100) == 0


@pytest.mark.timeout(5)
def test_a_lesson_is_held_when_the_teacher_is_live_half_its_time() -> None:
    o = lesson("x", 0)
    assert is_held(o, [interval("x", "teacher", "live", -300, 1200)])  # 20 of 40 minutes
    assert not is_held(o, [interval("x", "teacher", "live", -300, 1199)])
    assert not is_held(o, [interval("x", "teacher", "present", 0, 2400)])  # there, not live
    # two connections of the same teacher overlapping count once
    both = [interval("x", "teacher", "live", 0, 1000), interval("x", "teacher", "live", 500, 1100)]
    assert not is_held(o, both)


@pytest.mark.timeout(5)
def test_periods_are_iso_weeks_months_and_terms() -> None:
    assert period_of(date(2026, 3, 4), "week") == "2026-03-02"
    assert period_of(date(2026, 3, 4), "month") == "2026-03"
    assert period_of(date(2026, 3, 4), "term") == "2026-spring"
    assert period_of(date(2026, 9, 1), "term") == "2026-autumn"
    assert period_of(date(2027, 1, 10), "term") == "2026-autumn"
    with pytest.raises(ValueError):
        period_of(date(2026, 1, 1), "year")


@pytest.mark.timeout(5)
def test_the_rate_counts_only_lessons_that_are_over() -> None:
    held = lesson("held", 0)
    missed = lesson("missed", HOUR)
    future = lesson("future", 10 * HOUR)
    intervals = {"held": [interval("held", "teacher", "live", 0, 2400)]}
    rows = rate_by([held, missed, future], intervals, now=5 * HOUR, period="week")
    assert [(r.period, r.scheduled, r.held, r.rate) for r in rows] == [("2026-03-02", 2, 1, 0.5)]
    assert rate_by([future], {}, now=5 * HOUR, period="week") == []


@pytest.mark.timeout(5)
def test_attendance_counts_minutes_within_the_lesson_per_receiving_classroom() -> None:
    first = lesson("one", 0)
    second = lesson("two", HOUR, receivers=("a",))
    intervals = {
        "one": [
            interval("one", "c-room-a", "present", -120, 2400, "a"),  # early: 40 of 40
            interval("one", "c-room-b", "present", 0, 600, "b"),  # 10 minutes, then gone
            interval("one", "c-room-b", "present", 1200, 1500, "b"),  # back for 5
        ],
    }
    rows = {r.classroom: r for r in attendance_by([first, second], intervals, now=3 * HOUR)}
    assert (rows["a"].lessons, rows["a"].attended, rows["a"].minutes) == (2, 1, 40.0)
    assert rows["a"].scheduled_minutes == 80.0 and rows["a"].rate == 0.5
    assert (rows["b"].lessons, rows["b"].attended, rows["b"].minutes) == (1, 0, 15.0)


@pytest.mark.timeout(5)
def test_hours_per_teacher_are_scheduled_and_delivered() -> None:
    lessons = [lesson("one", 0), lesson("two", HOUR), lesson("three", 2 * HOUR, teacher="li")]
    intervals = {
        "one": [interval("one", "teacher", "live", 0, 2400)],
        "two": [interval("two", "teacher", "live", HOUR, HOUR + 600)],  # 10 minutes
    }
    rows = {r.key: r for r in hours_by(lessons, intervals, now=4 * HOUR, key="teacher")}
    assert (rows["wang"].lessons, rows["wang"].held) == (2, 1)
    assert (rows["wang"].scheduled_hours, rows["wang"].delivered_hours) == (1.33, 0.83)
    assert (rows["li"].held, rows["li"].delivered_hours) == (0, 0.0)


@pytest.mark.timeout(5)
def test_the_line_check_chooses_the_highest_layer_the_line_carries() -> None:
    assert starting_layer(20e6, 0.0) == 0
    assert starting_layer(20e6, 0.08) == 1  # lossy: not the top first
    assert starting_layer(1.5e6, None) == 1
    assert starting_layer(500e3, 0.0) == 2
    assert starting_layer(100e3, 0.0) is None
    assert starting_layer(20e6, 0.3) == 2  # a very lossy line starts low
    assert starting_layer(200e3, 0.3) is None


@pytest.mark.timeout(5)
def test_charts_are_svg_with_round_axes_and_escaped_labels() -> None:
    assert [nice_max(v) for v in (0, 0.7, 3, 42, 99, 101, 2400)] == [1, 1, 5, 50, 100, 200, 2500]
    svg = str(bars("开课率", ["第1周", "<b>"], [50.0, None], unit="%", maximum=100))
    assert svg.startswith("<svg") and svg.count("<rect") == 1
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    assert "style=" not in svg  # the CSP allows no inline styles


@pytest.mark.timeout(5)
def test_the_login_throttle_refuses_after_five_failures_until_they_age_out() -> None:
    now = [0.0]
    throttle = LoginThrottle(limit=5, window=900, clock=lambda: now[0])
    for _ in range(5):
        assert throttle.blocked("ip:1", "login:a") == 0
        throttle.failed("ip:1", "login:a")
    assert throttle.blocked("ip:2", "login:a") == 900  # the login is held, from any address
    assert throttle.blocked("ip:2", "login:b") == 0
    now[0] = 901
    assert throttle.blocked("ip:1", "login:a") == 0


@pytest.mark.timeout(10)
def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert check_password("correct horse", first)
    assert not check_password("correct horsf", first)
    assert not check_password("correct horse", "md5$abc")
