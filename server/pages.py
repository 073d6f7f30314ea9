"""The HTML pages: landing, teacher, classroom and the observation wall. Rendered with
jinja2."""

import json
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from server.errors import UserError
from server.i18n import COOKIE, LANGUAGES, catalog, pick_language, translate
from server.keys import TEMPLATES, TOKENS
from server.tokens import LESSON_ID

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# An observer (an inspector, a parent) watches on the classroom's page.
TEMPLATES_BY_ROLE = {
    "teacher": "teacher.html",
    "classroom": "classroom.html",
    "observer": "classroom.html",
}


def create_templates(directory: Path = WEB_DIR / "templates") -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    language = pick_language(request)
    messages = catalog(language)
    env = request.app[TEMPLATES]

    def t(key: str, **values: object) -> str:
        return translate(language, key, **values)

    switch = {other: str(request.rel_url.update_query(lang=other)) for other in LANGUAGES}
    body = env.get_template(template).render(
        t=t,
        lang=language,
        languages=LANGUAGES,
        switch=switch,
        messages_json=json.dumps(messages, ensure_ascii=False),
        **context,
    )
    response = web.Response(text=body, content_type="text/html", status=status)
    if request.query.get("lang") in LANGUAGES:
        response.set_cookie(COOKIE, request.query["lang"], max_age=365 * 86400, samesite="Lax")
    return response


async def index(request: web.Request) -> web.Response:
    return render(request, "index.html")


async def teacher_page(request: web.Request) -> web.Response:
    return _lesson_page(request, "teacher")


async def classroom_page(request: web.Request) -> web.Response:
    return _lesson_page(request, "classroom")


async def observer_page(request: web.Request) -> web.Response:
    return _lesson_page(request, "observer")


async def observe_page(request: web.Request) -> web.Response:
    """The observation wall (巡课): every live lesson, for an observer token (one
    for lesson "*" sees them all)."""
    token = request.query.get("token", "")
    tokens = request.app[TOKENS]
    try:
        grant = tokens.verify(token)
        tokens.check(grant, role="observer")
    except UserError as exc:
        return render(request, "refused.html", status=exc.status, code=exc.code, detail=exc.message)
    return render(request, "observe.html", lesson=grant.lesson, name=grant.name, token=token)


def _lesson_page(request: web.Request, role: str) -> web.Response:
    lesson_id = request.match_info["lesson"]
    if not LESSON_ID.match(lesson_id):
        raise web.HTTPNotFound()
    token = request.query.get("token", "")
    tokens = request.app[TOKENS]
    try:
        grant = tokens.verify(token)
        tokens.check(grant, lesson=lesson_id, role=role)
    except UserError as exc:
        return render(
            request,
            "refused.html",
            status=exc.status,
            code=exc.code,
            detail=exc.message,
        )
    return render(
        request,
        TEMPLATES_BY_ROLE[role],
        lesson=lesson_id,
        role=role,
        name=grant.name,
        token=token,
    )


def setup_pages(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/lesson/{lesson}/teacher", teacher_page)
    app.router.add_get("/lesson/{lesson}/classroom", classroom_page)
    app.router.add_get("/lesson/{lesson}/observer", observer_page)
    app.router.add_get("/observe", observe_page)
