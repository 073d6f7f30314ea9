"""The one-touch classroom PC (kiosk): /room/{classroom}?device=TOKEN.

The classroom's PC opens this one URL once and stays there all term. While none
of its lessons is open, the page shows today's lessons and a countdown to the
next (room.html). When one opens (a few minutes early, for the sound check), the
same URL renders the lesson page itself, the classroom's (or, for the 主讲
classroom, the teacher's), with a join link made for this occurrence that expires
when the lesson ends. room.js asks /api/room/{classroom} every few seconds and
reloads the page when what should be shown changes; a reload, a browser restart
or a dropped line all land on the right page again.

The device token authenticates the page and the API (`Authorization: Bearer`);
the server's time is sent along, so that countdowns follow the server's clock.
"""

import hashlib
from datetime import datetime, time, timedelta
from typing import Any

from aiohttp import web

from server.directory import Classroom
from server.errors import UserError
from server.keys import CLOCK, COUNTY, SCHEDULER, SETTINGS, TOKENS
from server.linecheck import LineCheck
from server.pages import render
from server.timetable import Occurrence

SEAT_PREFIX = "room-"  # a kiosk's join token id: its seat is c-room-{classroom}
CHECK_BEFORE = 15 * 60.0  # a line check is due when a lesson opens within this
CHECK_AGAIN = 30 * 60.0  # unless one was made this recently


def device_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return token or request.query.get("device", "")


def device_classroom(request: web.Request) -> Classroom:
    """The classroom whose device token came with the request (noting it was seen)."""
    county = request.app[COUNTY]
    classroom = county.directory.verify_device(
        request.match_info["classroom"], device_token(request)
    )
    county.directory.seen(classroom.id, request.app[CLOCK].now())
    return classroom


def classroom_of_seat(seat: str) -> str | None:
    prefix = f"c-{SEAT_PREFIX}"
    return seat[len(prefix) :] if seat.startswith(prefix) else None


def join_token(request: web.Request, classroom: Classroom, occurrence: Occurrence) -> str:
    """A join link for this occurrence, valid until it ends."""
    role = occurrence.role_of(classroom.id)
    assert role is not None
    county = request.app[COUNTY]
    now = request.app[CLOCK].now()
    if role == "teacher":
        teacher = county.directory.teacher(occurrence.teacher)
        name = f"{teacher.name if teacher else occurrence.teacher} · {classroom.name}"
    else:
        name = classroom.name
    return request.app[TOKENS].issue(
        occurrence.lesson,
        role,
        name[:64],
        ttl=max(1.0, occurrence.ends - int(now)),  # expires when the lesson ends
        token_id=f"{SEAT_PREFIX}{classroom.id}",
    )


async def room_page(request: web.Request) -> web.Response:
    try:
        classroom = device_classroom(request)
    except UserError as exc:
        return render(request, "refused.html", status=exc.status, code=exc.code, detail=exc.message)
    now = request.app[CLOCK].now()
    occurrence = request.app[SCHEDULER].current(classroom.id, now)
    room = room_state(request, classroom)
    if occurrence is not None:
        role = occurrence.role_of(classroom.id)
        token = join_token(request, classroom, occurrence)
        return render(
            request,
            "room_teacher.html" if role == "teacher" else "room_classroom.html",
            lesson=occurrence.lesson,
            role=role,
            name=request.app[TOKENS].verify(token).name,
            token=token,
            room=room,
        )
    return render(request, "room.html", classroom=classroom, room=room)


async def room_api(request: web.Request) -> web.Response:
    classroom = device_classroom(request)
    return web.json_response(room_state(request, classroom))


async def join_api(request: web.Request) -> web.Response:
    """A join link for the classroom's lesson open now (for kiosk clients other
    than the page, e.g. a script)."""
    classroom = device_classroom(request)
    now = request.app[CLOCK].now()
    occurrence = request.app[SCHEDULER].current(classroom.id, now)
    if occurrence is None:
        raise UserError("not_open", "no lesson of this classroom is open now", status=409)
    role = occurrence.role_of(classroom.id)
    token = join_token(request, classroom, occurrence)
    base = request.app[SETTINGS].base_url
    return web.json_response(
        {
            "lesson": occurrence.lesson,
            "role": role,
            "token": token,
            "url": f"{base}/lesson/{occurrence.lesson}/{role}?token={token}",
            "ends": occurrence.ends * 1000,
        }
    )


def room_state(request: web.Request, classroom: Classroom) -> dict[str, Any]:
    """What a kiosk page shows and decides by; times in ms since the epoch."""
    app = request.app
    county, scheduler = app[COUNTY], app[SCHEDULER]
    now = app[CLOCK].now()
    today = datetime.fromtimestamp(now, county.zone).date()
    start = datetime.combine(today, time(0), county.zone).timestamp()
    end = datetime.combine(today + timedelta(days=1), time(0), county.zone).timestamp()
    lessons = county.timetable.listing(start, end, classroom=classroom.id)
    current = scheduler.current(classroom.id, now)
    upcoming = [o for o in lessons if scheduler.opens(o) > now]
    following = upcoming[0] if upcoming else None
    check = county.checks.latest(classroom.id)
    due = (
        following is not None
        and scheduler.opens(following) - now <= CHECK_BEFORE
        and (check is None or now - check.at > CHECK_AGAIN)
    )
    today_list = [_entry(o, classroom.id, scheduler.state(o, now), county) for o in lessons]
    version = hashlib.sha256(
        repr([(e["lesson"], e["state"]) for e in today_list]).encode()
    ).hexdigest()[:16]
    return {
        "now": now * 1000,
        "zone": str(county.zone),
        "poll": app[SETTINGS].timetable.room_poll,
        "classroom": {"id": classroom.id, "name": classroom.name},
        "device": device_token(request),
        "lesson": current.lesson if current else None,
        "role": current.role_of(classroom.id) if current else None,
        "next": _entry(following, classroom.id, "upcoming", county) if following else None,
        "today": today_list,
        "version": version,
        "check": check_json(check) if check else None,
        "check_due": due,
    }


def _entry(o: Occurrence, classroom: str, state: str, county: Any) -> dict[str, Any]:
    teacher = county.directory.teacher(o.teacher)
    host = county.directory.classroom(o.host)
    return {
        "lesson": o.lesson,
        "title": o.title,
        "subject": o.subject,
        "grade": o.grade,
        "period": o.period,
        "start": o.start_time,
        "end": o.end_time,
        "starts": o.starts * 1000,
        "ends": o.ends * 1000,
        "role": o.role_of(classroom),
        "teacher": teacher.name if teacher else o.teacher,
        "host": host.name if host else o.host,
        "state": state,
    }


def check_json(check: LineCheck) -> dict[str, Any]:
    return {
        "at": check.at * 1000,
        "down_bps": round(check.down_bps),
        "up_bps": round(check.up_bps),
        "rtt_ms": round(check.rtt_ms) if check.rtt_ms is not None else None,
        "loss": round(check.loss, 4) if check.loss is not None else None,
        "layer": check.layer,
        "verdict": check.verdict,
    }


def setup_room(app: web.Application) -> None:
    app.router.add_get("/room/{classroom}", room_page)
    app.router.add_get("/api/room/{classroom}", room_api)
    app.router.add_get("/api/room/{classroom}/join", join_api)
    app.router.add_post("/api/room/{classroom}/report", report_api)


async def report_api(request: web.Request) -> web.Response:
    """Freezes and audio loss a classroom page measured since its last report."""
    classroom = device_classroom(request)
    try:
        body = await request.json()
    except ValueError:
        raise UserError("bad_request", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise UserError("bad_request", "the body must be a JSON object")
    county = request.app[COUNTY]
    occurrence = county.timetable.get(str(body.get("lesson", "")))
    if occurrence is None or classroom.id not in occurrence.classrooms:
        raise UserError("not_found", "this classroom has no such lesson", status=404)
    values = []
    for name, high in (
        ("freezes", 100_000),
        ("freeze_seconds", 86_400),
        ("audio_samples", 10**10),
        ("audio_concealed", 10**10),
    ):
        value = body.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
            raise UserError("bad_request", f"{name} must be a number from 0 to {high}")
        values.append(value)
    freezes, freeze_seconds, samples, concealed = values
    county.attendance.report(
        occurrence.lesson,
        classroom.id,
        request.app[CLOCK].now(),
        int(freezes),
        float(freeze_seconds),
        int(samples),
        int(min(concealed, samples)),
    )
    return web.json_response({"ok": True})
