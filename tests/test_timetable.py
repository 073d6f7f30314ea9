"""The timetable: weekly repeats, conflicts that name the clash, and CSV import."""

from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.directory import Directory, DirectoryError
from server.timetable import LessonPlan, Timetable, TimetableError
from server.timetable_csv import read_plans

ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = date(2026, 3, 2)


def county(path: Path) -> tuple[Directory, Timetable]:
    """A small county: a town school with a 主讲 classroom and two teachers, and two
    village schools with a receiving classroom each."""
    directory = Directory(path)
    directory.add_school("town", "城关小学")
    directory.add_school("east", "东村小学")
    directory.add_school("west", "西村教学点")
    directory.add_classroom("town-301", "town", "城关小学 301")
    directory.add_classroom("town-302", "town", "城关小学 302")
    directory.add_classroom("east-1", "east", "东村小学 一班")
    directory.add_classroom("west-1", "west", "西村教学点")
    directory.add_teacher("wang", "town", "王老师")
    directory.add_teacher("li", "town", "李老师")
    for subject in ("音乐", "美术", "英语"):
        directory.add_subject(subject)
    return directory, Timetable(path, ZONE)


def plan(**changes: object) -> LessonPlan:
    values: dict[str, object] = {
        "title": "三年级音乐 第一课",
        "subject": "音乐",
        "grade": "三年级",
        "teacher": "wang",
        "host": "town-301",
        "receivers": ("east-1", "west-1"),
        "day": MONDAY,
        "start": time(8, 55),
        "end": time(9, 35),
        "period": 2,
    }
    values.update(changes)
    return LessonPlan(**values)  # type: ignore[arg-type]


@pytest.mark.timeout(10)
def test_a_weekly_repeat_makes_one_lesson_per_week_each_with_its_own_id(tmp_path: Path) -> None:
    _, timetable = county(tmp_path / "db")
    added = timetable.add([plan(until=date(2026, 3, 30))], now=0)
    assert [o.date for o in added] == [
        "2026-03-02",
        "2026-03-09",
        "2026-03-16",
        "2026-03-23",
        "2026-03-30",
    ]
    assert len({o.lesson for o in added}) == 5
    assert len({o.series for o in added}) == 1
    first = timetable.get(added[0].lesson)
    assert first is not None
    assert first.receivers == ("east-1", "west-1")
    assert first.role_of("town-301") == "teacher" and first.role_of("west-1") == "classroom"
    # 08:55 in Beijing is 00:55 UTC
    assert first.starts == 1772412900.0 and first.ends - first.starts == 40 * 60


@pytest.mark.timeout(10)
def test_a_classroom_booked_twice_in_the_same_period_is_refused_naming_the_clash(
    tmp_path: Path,
) -> None:
    _, timetable = county(tmp_path / "db")
    first = timetable.add([plan()], now=0)[0]
    clash = plan(title="三年级美术", subject="美术", teacher="li", host="town-302")
    with pytest.raises(TimetableError) as refused:
        timetable.add([clash], now=0)
    texts = [p.describe("en") for p in refused.value.problems]
    assert len(texts) == 2  # both receiving classrooms are taken
    assert texts[0] == (
        "classroom 东村小学 一班 (east-1) is already booked on 2026-03-02 period 2 "
        f'(08:55–09:35): "三年级音乐 第一课" (08:55–09:35, {first.lesson})'
    )
    zh = refused.value.problems[1].describe("zh-CN")
    assert "西村教学点（west-1）" in zh and "第2节（08:55–09:35）" in zh
    assert len(timetable.between(0, 2e9)) == 1


@pytest.mark.timeout(10)
def test_a_teacher_in_two_places_and_a_partial_overlap_are_refused(tmp_path: Path) -> None:
    _, timetable = county(tmp_path / "db")
    timetable.add([plan(receivers=("east-1",))], now=0)
    with pytest.raises(TimetableError) as refused:
        # another classroom pair, same teacher, starting half-way through
        timetable.add(
            [plan(host="town-302", receivers=("west-1",), start=time(9, 15), end=time(9, 55))],
            now=0,
        )
    assert [p.key for p in refused.value.problems] == ["teacher_busy"]
    # back to back is no clash
    timetable.add(
        [plan(host="town-302", receivers=("west-1",), start=time(9, 35), end=time(10, 15))], now=0
    )
    assert len(timetable.between(0, 2e9)) == 2


@pytest.mark.timeout(10)
def test_a_repeat_that_clashes_in_its_third_week_is_refused_whole(tmp_path: Path) -> None:
    _, timetable = county(tmp_path / "db")
    timetable.add([plan(day=date(2026, 3, 16), host="town-302", teacher="li")], now=0)
    with pytest.raises(TimetableError) as refused:
        timetable.add([plan(until=date(2026, 4, 27))], now=0)
    assert {p.values["date"] for p in refused.value.problems} == {"2026-03-16"}
    assert len(timetable.between(0, 2e9)) == 1


@pytest.mark.timeout(10)
def test_plans_that_name_nothing_known_are_refused_with_each_reason(tmp_path: Path) -> None:
    _, timetable = county(tmp_path / "db")
    with pytest.raises(TimetableError) as refused:
        timetable.add(
            [
                plan(
                    teacher="nobody",
                    subject="物理",
                    receivers=("town-301", "ghost"),
                    end=time(8, 0),
                )
            ],
            now=0,
        )
    assert sorted(p.key for p in refused.value.problems) == [
        "bad_time",
        "host_receives",
        "unknown_classroom",
        "unknown_subject",
        "unknown_teacher",
    ]


CLEAN = """date,period,start,end,host,receivers,teacher,subject,grade,title,repeat_until
2026-03-02,2,08:55,09:35,town-301,east-1;west-1,wang,音乐,三年级,唱游,2026-03-16
2026/3/3,3,9:50,10:30,town-302,east-1,li,美术,四年级,色彩,
"""


@pytest.mark.timeout(10)
def test_a_clean_csv_reads_into_plans_with_their_lines() -> None:
    plans, problems = read_plans(CLEAN.encode())
    assert problems == []
    assert [(p.line, p.day, p.start, p.receivers, p.until) for p in plans] == [
        (2, MONDAY, time(8, 55), ("east-1", "west-1"), date(2026, 3, 16)),
        (3, date(2026, 3, 3), time(9, 50), ("east-1",), None),
    ]


@pytest.mark.timeout(10)
def test_a_chinese_header_in_gb18030_from_excel_reads_the_same() -> None:
    text = (
        "日期,节次,开始,结束,主讲教室,接收教室,主讲教师,学科,年级,课题\r\n"
        "2026-03-02,2,08:55,09:35,town-301,east-1、west-1,wang,音乐,三年级,唱游\r\n"
    )
    plans, problems = read_plans(text.encode("gb18030"))
    assert problems == []
    assert plans[0].receivers == ("east-1", "west-1") and plans[0].title == "唱游"


@pytest.mark.timeout(10)
def test_bad_csv_rows_are_reported_by_line_number() -> None:
    text = (
        "date,period,start,end,host,receivers,teacher,subject,title\n"
        "2026-03-02,2,08:55,09:35,town-301,east-1,wang,音乐,ok\n"
        "2026-02-30,2,08:55,09:35,town-301,east-1,wang,音乐,bad date\n"
        "\n"
        "2026-03-03,x,8.55,09:35,town-301,,wang,音乐,bad period and time\n"
    )
    plans, problems = read_plans(text.encode())
    assert len(plans) == 1
    assert [p.describe("en") for p in problems] == [
        'line 3: date: "2026-02-30" cannot be read',
        "line 5: receivers is missing",
    ]


@pytest.mark.timeout(10)
def test_an_import_with_clashing_rows_changes_nothing_and_names_both_lines(
    tmp_path: Path,
) -> None:
    _, timetable = county(tmp_path / "db")
    text = CLEAN + "2026-03-09,2,09:00,09:40,town-302,west-1,li,美术,四年级,撞课,\n"
    plans, problems = read_plans(text.encode())
    assert problems == []
    with pytest.raises(TimetableError) as refused:
        timetable.add(plans, now=0)
    assert [p.describe("en") for p in refused.value.problems] == [
        "line 4: classroom 西村教学点 (west-1) is booked twice on 2026-03-09 "
        "period 2 (09:00–09:40): here and on line 2"
    ]
    assert timetable.between(0, 2e9) == []
    added = timetable.add(read_plans(CLEAN.encode())[0], now=0)
    assert len(added) == 4


@pytest.mark.timeout(10)
def test_what_the_timetable_uses_cannot_be_removed_from_the_directory(tmp_path: Path) -> None:
    directory, timetable = county(tmp_path / "db")
    timetable.add([plan()], now=0)
    for kind, key in (("subject", "音乐"), ("classroom", "west-1"), ("teacher", "wang")):
        with pytest.raises(DirectoryError) as refused:
            directory.remove(kind, key)
        assert refused.value.code == "in_use"
    directory.remove("subject", "英语")
    assert "英语" not in directory.subjects()
