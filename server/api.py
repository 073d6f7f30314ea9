"""The REST API: /api/lessons/{id}/stats."""

from aiohttp import web

from server.errors import UserError
from server.keys import LESSONS, TOKENS
from server.tokens import ANY_LESSON, Grant

STATS_ROLES = ("teacher", "observer")


def bearer_grant(request: web.Request) -> Grant:
    """The grant of the token in `Authorization: Bearer …` or `?token=`."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or request.query.get("token")
    return request.app[TOKENS].verify(token)


async def lesson_stats(request: web.Request) -> web.Response:
    lesson_id = request.match_info["lesson"]
    grant = bearer_grant(request)
    request.app[TOKENS].check(grant, lesson=lesson_id)
    if grant.role not in STATS_ROLES:
        raise UserError(
            "forbidden", "only the teacher and observers see a lesson's statistics", status=403
        )
    lesson = request.app[LESSONS].get(lesson_id)
    if lesson is None:
        raise UserError("not_live", f"lesson {lesson_id} is not running now", status=404)
    return web.json_response(lesson.link_stats())


async def live_lessons(request: web.Request) -> web.Response:
    """The lessons running now, for observers (巡课): a "*" observer token sees all,
    a lesson's observer or teacher token sees that lesson."""
    grant = bearer_grant(request)
    if grant.role not in STATS_ROLES:
        raise UserError("forbidden", "only observers and teachers list live lessons", status=403)
    lessons = []
    for lesson in request.app[LESSONS]:
        if grant.lesson not in (ANY_LESSON, lesson.id):
            continue
        teacher = lesson.teacher
        lessons.append(
            {
                "lesson": lesson.id,
                "live": lesson.live,
                "teacher": teacher.name if teacher else None,
                "classrooms": len(lesson.classroom_seats()),
                "stage": lesson.seat_name(lesson.floor.stage),
                "recording": lesson.recording is not None,
            }
        )
    return web.json_response({"lessons": lessons})


def setup_api(app: web.Application) -> None:
    app.router.add_get("/api/lessons/{lesson}/stats", lesson_stats)
    app.router.add_get("/api/live", live_lessons)
