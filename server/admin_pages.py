"""The administration pages: home, the directory (schools, classrooms, teachers,
subjects, device tokens) and device health. Who may do what is decided in
server/authz.py; these handlers only narrow to the administrator's school.

Forms post and are answered by a redirect back (`?done=`), except when a device
token was made: it is shown once, on the answer itself, and never again.
"""

from datetime import datetime
from typing import Any

from aiohttp import web

from server.authz import (
    CSRF_FIELD,
    SESSION,
    admin_of,
    admin_route,
    require_school,
    school_scope,
)
from server.directory import Classroom, Teacher
from server.errors import UserError
from server.keys import CLOCK, COUNTY, LESSONS, SETTINGS
from server.login import setup_login
from server.pages import render
from server.room import SEAT_PREFIX

NAV = ("home", "directory", "timetable", "stats", "devices")


def admin_render(
    request: web.Request, template: str, section: str, status: int = 200, **context: Any
) -> web.Response:
    session = request[SESSION]
    county = request.app[COUNTY]
    school = county.directory.school(session.admin.school) if session.admin.school else None
    return render(
        request,
        template,
        status=status,
        admin=session.admin,
        admin_school=school.name if school else "",
        csrf=session.csrf,
        csrf_field=CSRF_FIELD,
        nav=NAV,
        section=section,
        done=request.query.get("done", ""),
        **context,
    )


def local_time(request: web.Request, when: float | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    if when is None:
        return ""
    return datetime.fromtimestamp(when, request.app[COUNTY].zone).strftime(pattern)


async def form_of(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v.strip() for k, v in form.items() if isinstance(v, str)}


# -- home ------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    county = request.app[COUNTY]
    scope = school_scope(request)
    classrooms = county.directory.classrooms(scope)
    now = request.app[CLOCK].now()
    online = [c for c in classrooms if is_online(request, c, now)]
    return admin_render(
        request,
        "admin_home.html",
        "home",
        classrooms=len(classrooms),
        online=len(online),
        teachers=len(county.directory.teachers(scope)),
    )


# -- the directory -----------------------------------------------------------------


async def directory_page(request: web.Request) -> web.Response:
    return _directory(request)


def _directory(
    request: web.Request, status: int = 200, problem: str = "", issued: dict[str, str] | None = None
) -> web.Response:
    county = request.app[COUNTY]
    scope = school_scope(request)
    schools = [s for s in county.directory.schools() if scope is None or s.id == scope]
    names = {s.id: s.name for s in county.directory.schools()}
    classrooms = [
        {
            **c.__dict__,
            "school_name": names.get(c.school, c.school),
            "issued": local_time(request, c.token_issued),
        }
        for c in county.directory.classrooms(scope)
    ]
    teachers = [
        {**t.__dict__, "school_name": names.get(t.school, t.school)}
        for t in county.directory.teachers(scope)
    ]
    return admin_render(
        request,
        "admin_directory.html",
        "directory",
        status=status,
        schools=schools,
        classrooms=classrooms,
        teachers=teachers,
        subjects=county.directory.subjects(),
        county_admin=scope is None,
        problem=problem,
        issued=issued,
    )


async def directory_add(request: web.Request) -> web.StreamResponse:
    """A classroom or a teacher, in the administrator's school (any, for the county)."""
    form = await form_of(request)
    kind = form.get("kind", "")
    directory = request.app[COUNTY].directory
    school = form.get("school", "") or school_scope(request) or ""
    require_school(request, school)
    try:
        if kind == "classroom":
            directory.add_classroom(form.get("id", ""), school, form.get("name", ""))
        elif kind == "teacher":
            directory.add_teacher(form.get("id", ""), school, form.get("name", ""))
        else:
            raise UserError("bad_request", f"cannot add a {kind!r} here")
    except UserError as exc:
        return _directory(request, status=exc.status, problem=exc.message)
    raise web.HTTPSeeOther(f"/admin/directory?done=added_{kind}")


async def schools_add(request: web.Request) -> web.StreamResponse:
    """A school or a subject (county administrators)."""
    form = await form_of(request)
    kind = form.get("kind", "")
    directory = request.app[COUNTY].directory
    try:
        if kind == "school":
            directory.add_school(form.get("id", ""), form.get("name", ""))
        elif kind == "subject":
            directory.add_subject(form.get("name", ""))
        else:
            raise UserError("bad_request", f"cannot add a {kind!r} here")
    except UserError as exc:
        return _directory(request, status=exc.status, problem=exc.message)
    raise web.HTTPSeeOther(f"/admin/directory?done=added_{kind}")


async def directory_remove(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    kind, key = form.get("kind", ""), form.get("id", "")
    county = request.app[COUNTY]
    if kind == "classroom":
        found: Classroom | Teacher | None = county.directory.classroom(key)
    elif kind == "teacher":
        found = county.directory.teacher(key)
    else:
        raise UserError("bad_request", f"cannot remove a {kind!r} here")
    if found is None:
        raise UserError("not_found", f"there is no {kind} {key}", status=404)
    require_school(request, found.school)
    return _remove(request, kind, key)


async def schools_remove(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    kind = form.get("kind", "")
    if kind not in ("school", "subject"):
        raise UserError("bad_request", f"cannot remove a {kind!r} here")
    return _remove(request, kind, form.get("id", ""))


def _remove(request: web.Request, kind: str, key: str) -> web.StreamResponse:
    try:
        request.app[COUNTY].directory.remove(kind, key)
    except UserError as exc:
        return _directory(request, status=exc.status, problem=exc.message)
    raise web.HTTPSeeOther(f"/admin/directory?done=removed_{kind}")


async def device_token(request: web.Request) -> web.StreamResponse:
    """Issue, rotate or revoke a classroom's device token."""
    form = await form_of(request)
    county = request.app[COUNTY]
    classroom = county.directory.classroom(form.get("classroom", ""))
    if classroom is None:
        raise UserError("not_found", "there is no such classroom", status=404)
    require_school(request, classroom.school)
    action = form.get("action", "")
    try:
        if action == "revoke":
            county.directory.revoke_token(classroom.id)
            raise web.HTTPSeeOther("/admin/directory?done=revoked")
        if action not in ("issue", "rotate"):
            raise UserError("bad_request", f"unknown action {action!r}")
        token = county.directory.issue_token(
            classroom.id, request.app[CLOCK].now(), rotate=action == "rotate"
        )
    except UserError as exc:
        return _directory(request, status=exc.status, problem=exc.message)
    url = room_url(request.app[SETTINGS].base_url, classroom.id, token)
    return _directory(request, issued={"classroom": classroom.name, "url": url})


def room_url(base: str, classroom: str, token: str) -> str:
    return f"{base}/room/{classroom}?device={token}"


# -- device health -------------------------------------------------------------------


def online_seconds(request: web.Request) -> float:
    """A kiosk asks every room_poll seconds; three missed asks and it is offline."""
    return max(30.0, 3 * request.app[SETTINGS].timetable.room_poll)


def is_online(request: web.Request, classroom: Classroom, now: float) -> bool:
    seen = classroom.last_seen
    return seen is not None and now - seen <= online_seconds(request)


async def devices_page(request: web.Request) -> web.Response:
    county = request.app[COUNTY]
    now = request.app[CLOCK].now()
    in_lesson: dict[str, str] = {}
    for lesson in request.app[LESSONS]:
        for peer in lesson.peers.values():
            prefix = f"c-{SEAT_PREFIX}"
            if peer.seat.startswith(prefix):
                in_lesson[peer.seat[len(prefix) :]] = lesson.id
        occurrence = county.timetable.get(lesson.id)
        if occurrence is not None and lesson.teacher is not None:
            in_lesson[occurrence.host] = lesson.id
    names = {s.id: s.name for s in county.directory.schools()}
    rows = [
        {
            "id": c.id,
            "name": c.name,
            "school": names.get(c.school, c.school),
            "online": is_online(request, c, now),
            "seen": local_time(request, c.last_seen),
            "ago": _ago(now, c.last_seen),
            "token": c.token,
            "lesson": in_lesson.get(c.id, ""),
        }
        for c in county.directory.classrooms(school_scope(request))
    ]
    rows.sort(key=lambda r: (not r["online"], r["school"], r["id"]))
    return admin_render(
        request,
        "admin_devices.html",
        "devices",
        rows=rows,
        online=sum(1 for r in rows if r["online"]),
        now=local_time(request, now, "%Y-%m-%d %H:%M:%S"),
    )


def _ago(now: float, seen: float | None) -> dict[str, Any] | None:
    """How long ago, in the largest units that matter (a catalog key and values)."""
    if seen is None:
        return None
    minutes = max(0, int((now - seen) // 60))
    if minutes < 60:
        return {"key": "admin.devices.ago.minutes", "values": {"minutes": minutes}}
    if minutes < 1440:
        values = {"hours": minutes // 60, "minutes": minutes % 60}
        return {"key": "admin.devices.ago.hours", "values": values}
    return {"key": "admin.devices.ago.days", "values": {"days": minutes // 1440}}


def setup_admin_pages(app: web.Application) -> None:
    setup_login(app)
    admin_route(app, "GET", "/admin", "home", home)
    admin_route(app, "GET", "/admin/directory", "directory.view", directory_page)
    admin_route(app, "POST", "/admin/directory/add", "directory.edit", directory_add)
    admin_route(app, "POST", "/admin/directory/remove", "directory.edit", directory_remove)
    admin_route(app, "POST", "/admin/schools/add", "schools.edit", schools_add)
    admin_route(app, "POST", "/admin/schools/remove", "schools.edit", schools_remove)
    admin_route(app, "POST", "/admin/directory/device", "devices.manage", device_token)
    admin_route(app, "GET", "/admin/devices", "health.view", devices_page)


__all__ = ["admin_of", "admin_render", "setup_admin_pages"]
