"""The library's REST API: GET /api/library?… (search) and /api/library/{lesson}.

Search parameters: q (any text field or tag, in part), subject, grade, teacher,
school, tag (whole values), date (one day) or from/to (YYYY-MM-DD, inclusive),
limit (1-200, default 50) and offset. A lesson token (`?token=` or `Authorization:
Bearer`) adds that lesson if it is private.
"""

import re

from aiohttp import web

from server.errors import UserError
from server.keys import LIBRARY, TOKENS
from server.library_access import require_view, viewer_of
from server.library_store import LibraryQuery

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


def query_from(request: web.Request) -> LibraryQuery:
    """The search a request asks for; UserError (400) for a malformed one."""
    params = request.query
    values = {}
    for name in ("subject", "grade", "teacher", "school", "tag"):
        value = params.get(name, "").strip()
        if len(value) > 200:
            raise UserError("bad_query", f"{name} is too long")
        values[name] = value
    text = params.get("q", "").strip()[:200]
    date = params.get("date", "").strip()
    date_from = params.get("from", "").strip() or date
    date_to = params.get("to", "").strip() or date
    for label, value in (("date", date), ("from", date_from), ("to", date_to)):
        if value and not DATE.match(value):
            raise UserError("bad_query", f"{label} must be a date as YYYY-MM-DD")
    return LibraryQuery(text=text, date_from=date_from, date_to=date_to, **values)


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError("bad_query", f"{name} must be a whole number") from None
    return max(low, min(high, value))


async def search(request: web.Request) -> web.Response:
    library = request.app[LIBRARY]
    viewer = viewer_of(request, request.app[TOKENS])
    query = query_from(request)
    limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int(request, "offset", 0, 0, 1_000_000)
    found = library.search(query, viewer)
    return web.json_response(
        {
            "total": len(found),
            "offset": offset,
            "limit": limit,
            "lessons": [library.describe(e, viewer) for e in found[offset : offset + limit]],
        }
    )


async def lesson(request: web.Request) -> web.Response:
    library = request.app[LIBRARY]
    lesson_id = request.match_info["lesson"]
    viewer = viewer_of(request, request.app[TOKENS])
    entry = require_view(library.repository.get(lesson_id), viewer, lesson_id)
    data = library.describe(entry, viewer)
    status = library.job_status(lesson_id)
    if status is not None:
        data["job"] = {
            "state": status.state,
            "stage": status.stage,
            "percent": status.percent,
            "stages": status.stages,
            "done": status.done,
        }
    return web.json_response(data)


def setup_library_api(app: web.Application) -> None:
    app.router.add_get("/api/library", search)
    app.router.add_get("/api/library/{lesson}", lesson)
