"""The timetable's administration page: a week of lessons, a form to schedule
one (with a weekly repeat), a CSV import, and removing a lesson or its series.

A school administrator sees the lessons that involve their school and schedules
lessons whose 主讲 classroom is in their school (the receiving classrooms may be
anywhere in the county)."""

from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from server.admin_pages import admin_render, form_of
from server.attendance import Interval
from server.authz import admin_route, require_school, school_scope
from server.county import County
from server.errors import UserError
from server.i18n import pick_language
from server.keys import CLOCK, COUNTY, SCHEDULER
from server.stats_report import held_lessons
from server.timetable import LessonPlan, Occurrence, Problem, TimetableError
from server.timetable_csv import COLUMNS, parse_date, parse_time, read_plans

TEMPLATE_ROW = (
    "2026-03-02,2,08:55,09:35,town-301,east-1;west-1,wang,音乐,三年级,唱游《春天在哪里》,2026-06-29"
)


def _monday(request: web.Request) -> date:
    county = request.app[COUNTY]
    chosen = parse_date(request.query.get("week", ""))
    today = datetime.fromtimestamp(request.app[CLOCK].now(), county.zone).date()
    day = chosen or today
    return day - timedelta(days=day.weekday())


async def timetable_page(request: web.Request) -> web.Response:
    return _page(request)


def _page(
    request: web.Request,
    status: int = 200,
    problems: list[Problem] | None = None,
    form: dict[str, Any] | None = None,
    added: int | None = None,
) -> web.Response:
    county = request.app[COUNTY]
    scheduler = request.app[SCHEDULER]
    scope = school_scope(request)
    monday = _monday(request)
    start = datetime.combine(monday, time(0), county.zone).timestamp()
    end = datetime.combine(monday + timedelta(days=7), time(0), county.zone).timestamp()
    now = request.app[CLOCK].now()
    classrooms = {c.id: c for c in county.directory.classrooms()}
    teachers = {t.id: t for t in county.directory.teachers()}
    days: dict[str, list[dict[str, Any]]] = {
        (monday + timedelta(days=n)).isoformat(): [] for n in range(7)
    }
    lessons = county.timetable.listing(start, end, school=scope)
    held = held_lessons(lessons, _intervals(county, lessons), now)
    for o in lessons:
        host = classrooms.get(o.host)
        days[o.date].append(
            {
                **o.__dict__,
                "host_name": host.name if host else o.host,
                "receiver_names": [
                    classrooms[r].name if r in classrooms else r for r in o.receivers
                ],
                "teacher_name": teachers[o.teacher].name if o.teacher in teachers else o.teacher,
                "state": scheduler.state(o, now),
                "held": o.lesson in held,
                "mine": scope is None or (host is not None and host.school == scope),
            }
        )
    language = pick_language(request)
    return admin_render(
        request,
        "admin_timetable.html",
        "timetable",
        status=status,
        days=days,
        week=monday.isoformat(),
        previous=(monday - timedelta(days=7)).isoformat(),
        following=(monday + timedelta(days=7)).isoformat(),
        hosts=[c for c in classrooms.values() if scope is None or c.school == scope],
        classrooms=list(classrooms.values()),
        teachers=[t for t in teachers.values() if scope is None or t.school == scope],
        subjects=county.directory.subjects(),
        problems=[p.describe(language) for p in problems or []],
        form=form or {},
        added=added,
        columns=", ".join(COLUMNS),
    )


async def add_lesson(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    post = await request.post()
    receivers = tuple(str(r) for r in post.getall("receivers", []) if str(r).strip())
    problems = []
    day = parse_date(form.get("date", ""))
    start, end = parse_time(form.get("start", "")), parse_time(form.get("end", ""))
    until = parse_date(form["until"]) if form.get("until") else None
    for name, ok in (
        ("date", day is not None),
        ("start", start is not None),
        ("end", end is not None),
        ("repeat_until", until is not None or not form.get("until")),
    ):
        if not ok:
            problems.append(Problem("bad_value", {"column": name, "value": form.get(name, "")}))
    period = None
    if form.get("period"):
        try:
            period = int(form["period"])
        except ValueError:
            problems.append(Problem("bad_value", {"column": "period", "value": form["period"]}))
    values = {**form, "receivers": receivers}
    if problems:
        return _page(request, status=400, problems=problems, form=values)
    assert day is not None and start is not None and end is not None
    plan = LessonPlan(
        title=form.get("title", ""),
        subject=form.get("subject", ""),
        grade=form.get("grade", ""),
        teacher=form.get("teacher", ""),
        host=form.get("host", ""),
        receivers=receivers,
        day=day,
        start=start,
        end=end,
        period=period,
        until=until,
    )
    _check_scope(request, [plan])
    try:
        added = request.app[COUNTY].timetable.add([plan], request.app[CLOCK].now())
    except TimetableError as exc:
        return _page(request, status=_status(exc), problems=exc.problems, form=values)
    raise web.HTTPSeeOther(f"/admin/timetable?week={added[0].date}&done=added")


async def import_csv(request: web.Request) -> web.StreamResponse:
    post = await request.post()
    upload = post.get("file")
    if not isinstance(upload, FileField):
        return _page(request, status=400, problems=[Problem("empty")])
    plans, problems = read_plans(upload.file.read())
    if problems:
        return _page(request, status=400, problems=problems)
    _check_scope(request, plans)
    try:
        added = request.app[COUNTY].timetable.add(plans, request.app[CLOCK].now())
    except TimetableError as exc:
        return _page(request, status=_status(exc), problems=exc.problems)
    return _page(request, added=len(added))


def _intervals(county: County, lessons: list[Occurrence]) -> dict[str, list[Interval]]:
    found: dict[str, list[Interval]] = {}
    for interval in county.attendance.intervals([o.lesson for o in lessons]):
        found.setdefault(interval.lesson, []).append(interval)
    return found


def _status(refused: TimetableError) -> int:
    """409 when the plans only clash with the timetable (or each other), else 400."""
    clashes = all("_busy" in problem.key for problem in refused.problems)
    return 409 if clashes else 400


def _check_scope(request: web.Request, plans: list[LessonPlan]) -> None:
    """A school administrator schedules only from their own school's classrooms."""
    scope = school_scope(request)
    if scope is None:
        return
    directory = request.app[COUNTY].directory
    for plan in plans:
        host = directory.classroom(plan.host)
        if host is not None and host.school != scope:
            where = f"line {plan.line}: " if plan.line else ""
            raise UserError(
                "forbidden",
                f"{where}the 主讲 classroom {plan.host} belongs to another school",
                status=403,
            )


async def remove_lesson(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    county = request.app[COUNTY]
    occurrence = county.timetable.get(form.get("lesson", ""))
    if occurrence is None:
        raise UserError("not_found", "there is no such lesson", status=404)
    host = county.directory.classroom(occurrence.host)
    require_school(request, host.school if host else "")
    county.timetable.remove(occurrence.lesson, series=form.get("series") == "1")
    raise web.HTTPSeeOther(f"/admin/timetable?week={occurrence.date}&done=removed")


async def csv_template(request: web.Request) -> web.Response:
    header = ",".join(COLUMNS)
    return web.Response(
        text=f"{header}\n{TEMPLATE_ROW}\n",
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="timetable.csv"'},
    )


def setup_timetable_pages(app: web.Application) -> None:
    admin_route(app, "GET", "/admin/timetable", "timetable.view", timetable_page)
    admin_route(app, "GET", "/admin/timetable/template.csv", "timetable.view", csv_template)
    admin_route(app, "POST", "/admin/timetable/add", "timetable.edit", add_lesson)
    admin_route(app, "POST", "/admin/timetable/import", "timetable.edit", import_csv)
    admin_route(app, "POST", "/admin/timetable/remove", "timetable.edit", remove_lesson)
