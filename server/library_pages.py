"""The library's pages: /library (search and list) and /library/{lesson} (replay).

Both are rendered on the server, so that the list works without scripts; the
pages' scripts only refresh job progress (library.js) and pick the player
(replay.js: hls.js, native HLS, or the MP4).
"""

from typing import Any

from aiohttp import web

from server.errors import UserError
from server.keys import LIBRARY, TOKENS
from server.library_access import require_view, viewer_of
from server.library_api import query_from
from server.library_store import TEXT_FIELDS, LibraryQuery
from server.pages import WEB_DIR, render

PAGE_SIZE = 100
HLS_JS = WEB_DIR / "static" / "vendor" / "hls.min.js"


def duration_text(seconds: float | None) -> str:
    """ "42:07" or "1:02:07"."""
    if not seconds:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _with_text(lesson: dict[str, Any]) -> dict[str, Any]:
    return {**lesson, "duration_text": duration_text(lesson.get("duration"))}


async def library_page(request: web.Request) -> web.Response:
    library = request.app[LIBRARY]
    viewer = viewer_of(request, request.app[TOKENS])
    try:
        query = query_from(request)
        problem = ""
    except UserError as exc:
        query, problem = None, exc.message
    found = library.search(query, viewer) if query is not None else []
    lessons = [_with_text(library.describe(e, viewer)) for e in found[:PAGE_SIZE]]
    # suggestions for the search fields, from the lessons this viewer may see
    visible = library.search(LibraryQuery(), viewer)
    facets = {
        name: sorted({str(getattr(e, name)) for e in visible} - {""})
        for name in TEXT_FIELDS
        if name != "title"
    }
    form = {
        name: request.query.get(name, "")
        for name in ("q", "subject", "grade", "teacher", "school", "from", "to")
    }
    return render(
        request,
        "library.html",
        lessons=lessons,
        total=len(found),
        facets=facets,
        form=form,
        problem=problem,
        token=viewer.token,
        page={"token": viewer.token, "search": request.query_string},
    )


async def replay_page(request: web.Request) -> web.Response:
    library = request.app[LIBRARY]
    lesson_id = request.match_info["lesson"]
    viewer = viewer_of(request, request.app[TOKENS])
    try:
        entry = require_view(library.repository.get(lesson_id), viewer, lesson_id)
    except UserError as exc:
        return render(request, "refused.html", status=exc.status, code=exc.code, detail=exc.message)
    lesson = _with_text(library.describe(entry, viewer))
    files = lesson.get("files") or {}
    return render(
        request,
        "replay.html",
        lesson=lesson,
        hls_js=HLS_JS.is_file(),
        page={
            "lesson": entry.id,
            "hls": files.get("hls"),
            "mp4": files.get("mp4"),
            "audio": files.get("audio"),
            "state": entry.state,
        },
    )


def setup_library_pages(app: web.Application) -> None:
    app.router.add_get("/library", library_page)
    app.router.add_get("/library/{lesson}", replay_page)
