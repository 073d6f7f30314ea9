"""Reading a timetable spreadsheet saved as CSV into `LessonPlan`s.

The first line names the columns, in English or Chinese, in any order:

    date,period,start,end,host,receivers,teacher,subject,grade,title,repeat_until
    日期,节次,开始,结束,主讲教室,接收教室,主讲教师,学科,年级,课题,每周重复至

`period`, `grade` and `repeat_until` may be left out or empty. `receivers` lists
classroom ids separated by ";" (or "；", "、", "|" or spaces). Dates are
YYYY-MM-DD (or YYYY/M/D, as spreadsheets show them); times are H:MM. Files saved
by Excel in China are often GB18030 rather than UTF-8; both are read.

Every problem is reported with its line, and the caller imports nothing unless
there are none.
"""

import csv
import io
import re
from datetime import date, datetime, time

from server.timetable import LessonPlan, Problem

COLUMNS = {
    "date": ("date", "日期"),
    "period": ("period", "节次"),
    "start": ("start", "开始", "开始时间"),
    "end": ("end", "结束", "结束时间"),
    "host": ("host", "主讲教室"),
    "receivers": ("receivers", "接收教室"),
    "teacher": ("teacher", "主讲教师", "教师"),
    "subject": ("subject", "学科"),
    "grade": ("grade", "年级"),
    "title": ("title", "课题", "标题"),
    "repeat_until": ("repeat_until", "每周重复至", "重复至"),
}
REQUIRED = ("date", "start", "end", "host", "receivers", "teacher", "subject", "title")
SEPARATORS = re.compile(r"[;；、|,，\s]+")
MAX_LINES = 5000


def decode(data: bytes) -> str | None:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def read_plans(data: bytes) -> tuple[list[LessonPlan], list[Problem]]:
    """The plans in a CSV file, and the problems found (each with its line)."""
    text = decode(data)
    if text is None:
        return [], [Problem("encoding")]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [Problem("empty")]
    except csv.Error as exc:
        return [], [Problem("bad_csv", {"error": str(exc)}, 1)]
    columns, problems = _columns(header)
    if problems:
        return [], problems
    plans: list[LessonPlan] = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if line > MAX_LINES:
                return [], [Problem("too_many_lines", {"lines": MAX_LINES}, line)]
            values = {name: row[i].strip() if i < len(row) else "" for name, i in columns.items()}
            plan, found = _plan(values, line)
            problems += found
            if plan is not None:
                plans.append(plan)
    except csv.Error as exc:
        problems.append(Problem("bad_csv", {"error": str(exc)}, reader.line_num))
    if not plans and not problems:
        problems.append(Problem("empty"))
    return plans, problems


def _columns(header: list[str]) -> tuple[dict[str, int], list[Problem]]:
    names = {alias.lower(): name for name, aliases in COLUMNS.items() for alias in aliases}
    columns: dict[str, int] = {}
    problems = []
    for index, cell in enumerate(header):
        name = names.get(cell.strip().lstrip("\ufeff").lower())
        if name is None:
            if cell.strip():
                problems.append(Problem("unknown_column", {"column": cell.strip()}, 1))
        else:
            columns[name] = index
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        problems.append(Problem("missing_columns", {"columns": ", ".join(missing)}, 1))
    return columns, problems


def _plan(values: dict[str, str], line: int) -> tuple[LessonPlan | None, list[Problem]]:
    problems = [
        Problem("missing", {"column": name}, line) for name in REQUIRED if not values.get(name)
    ]
    if problems:
        return None, problems
    day = parse_date(values["date"])
    start, end = parse_time(values["start"]), parse_time(values["end"])
    until = parse_date(values["repeat_until"]) if values.get("repeat_until") else None
    period: int | None = None
    for name, ok in (
        ("date", day is not None),
        ("start", start is not None),
        ("end", end is not None),
        ("repeat_until", until is not None or not values.get("repeat_until")),
    ):
        if not ok:
            problems.append(Problem("bad_value", {"column": name, "value": values[name]}, line))
    if values.get("period"):
        try:
            period = int(values["period"])
            if not 1 <= period <= 20:
                raise ValueError
        except ValueError:
            problems.append(
                Problem("bad_value", {"column": "period", "value": values["period"]}, line)
            )
    if problems:
        return None, problems
    assert day is not None and start is not None and end is not None
    plan = LessonPlan(
        title=values["title"],
        subject=values["subject"],
        grade=values.get("grade", ""),
        teacher=values["teacher"],
        host=values["host"],
        receivers=tuple(r for r in SEPARATORS.split(values["receivers"]) if r),
        day=day,
        start=start,
        end=end,
        period=period,
        until=until,
        line=line,
    )
    return plan, []


def parse_date(text: str) -> date | None:
    for pattern in ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d"):
        try:
            return datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    return None


def parse_time(text: str) -> time | None:
    for pattern in ("%H:%M", "%H:%M:%S", "%H：%M"):
        try:
            return datetime.strptime(text.strip(), pattern).time().replace(second=0)
        except ValueError:
            continue
    return None
