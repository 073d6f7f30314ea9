"""The REST API: /api/lessons/{id}/stats."""

from aiohttp import web

from server.errors import UserError
from server.keys import LESSONS, TOKENS
from server.tokens import Grant

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


def setup_api(app: web.Application) -> None:
    app.router.add_get("/api/lessons/{lesson}/stats", lesson_stats)
