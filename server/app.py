"""The application factory: create_app(settings) -> aiohttp Application."""

import logging
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from config import Settings
from media import adapter
from server.api import setup_api
from server.clock import Clock, SystemClock
from server.county_routes import setup_county
from server.errors import error_middleware
from server.keys import CLOCK, LESSONS, SETTINGS, SOCKETS, TEMPLATES, TOKENS, WORKER
from server.lessons import Lessons
from server.library_routes import setup_library
from server.metrics import setup_metrics
from server.pages import WEB_DIR, create_templates, setup_pages
from server.router import setup_router
from server.security import security_headers
from server.signalling import websocket_handler
from server.tokens import Tokens, load_or_create_secret
from server.workers import WorkerPool

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    workers: WorkerPool | None = None,
    worker: int | None = None,
) -> web.Application:
    """The application. `clock` is the time the timetable runs on (tests move it).
    With `workers`, this is the front process: lessons live in the media workers and
    their signalling is routed there. `worker` is set in a media worker."""
    adapter.set_host_addresses(settings.media.ice_addresses)
    adapter.enable_opus_fec()
    app = web.Application(
        middlewares=[security_headers(bool(settings.server.tls_cert)), error_middleware],
        client_max_size=1024 * 1024,
    )
    app[SETTINGS] = settings
    if worker is not None:
        app[WORKER] = worker
    app[CLOCK] = clock or SystemClock()
    secret = settings.tokens.secret or load_or_create_secret(settings.data_path)
    app[TOKENS] = Tokens(secret, clock=app[CLOCK].now)
    app[LESSONS] = Lessons(settings)
    app[TEMPLATES] = create_templates()
    app[SOCKETS] = set()
    app.cleanup_ctx.append(_lessons_ctx)
    app.on_shutdown.append(_close_sockets)
    setup_pages(app)
    if workers is None:
        setup_metrics(app)
        setup_api(app)
        app.router.add_get("/ws", websocket_handler)
        app.router.add_get("/healthz", healthz)
    else:
        setup_router(app, workers)
    setup_library(app)  # registered after the lessons: at shutdown its jobs stop first
    setup_county(app)  # the directory, timetable, kiosk rooms, admin pages, statistics
    app.router.add_static("/static", WEB_DIR / "static", append_version=True)
    return app


async def healthz(request: web.Request) -> web.Response:
    lessons = request.app[LESSONS]
    return web.json_response({"status": "ok", "lessons": len(lessons), "peers": lessons.peer_count})


async def _lessons_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[LESSONS].close()


async def _close_sockets(app: web.Application) -> None:
    sockets = app[SOCKETS]
    for ws in list(sockets):
        if not ws.closed:
            try:
                await ws.send_json(
                    {
                        "type": "error",
                        "code": "shutdown",
                        "fatal": True,
                        "message": "the server is restarting; the page reconnects by itself",
                    }
                )
            except ConnectionError:
                pass
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
