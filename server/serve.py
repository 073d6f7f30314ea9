"""Running the server: listening (with TLS, and an http redirect), the demo links,
and a shutdown that finishes within 10 s."""

import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable

from aiohttp import web
from yarl import URL

from config import ConfigError, Settings, parse_duration
from server.tls import SELF_SIGNED, self_signed, server_context
from server.workers import WorkerPool

logger = logging.getLogger(__name__)

DEMO_LESSON = "demo"
DEMO_CLASSROOMS = 3
SHUTDOWN_SECONDS = 9.0


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    server = settings.server
    if not server.tls_cert:
        return None
    if server.tls_cert == SELF_SIGNED:
        hosts = [a for a in settings.media.ice_addresses]
        if server.public_url:
            host = URL(server.public_url).host
            if host:
                hosts.append(host)
        cert, key = self_signed(settings.data_path / "tls", hosts)
        return server_context(cert, key)
    return server_context(server.tls_cert, server.tls_key)


def redirect_app(https_port: int) -> web.Application:
    async def redirect(request: web.Request) -> web.Response:
        host = request.url.host or "localhost"
        target = (
            request.url.with_scheme("https")
            .with_host(host)
            .with_port(None if https_port == 443 else https_port)
        )
        raise web.HTTPMovedPermanently(str(target))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app


async def run_server(settings: Settings, demo: bool) -> None:
    context = tls_context(settings)
    count = settings.server.workers
    if count < 0:
        count = os.cpu_count() or 1
    pool: WorkerPool | None = None
    if count > 0:
        pool = WorkerPool(settings, count)
        await pool.start()
    try:
        await _serve(settings, demo, context, pool)
    finally:
        if pool is not None:
            await pool.close()


async def _serve(
    settings: Settings,
    demo: bool,
    context: ssl.SSLContext | None,
    pool: WorkerPool | None,
) -> None:
    from server.app import create_app
    from server.keys import TOKENS

    app = create_app(settings, workers=pool)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    runners = [runner]
    try:
        await _listen(runner, settings.server.host, settings.server.port, context)
        redirect_port = settings.server.http_redirect_port
        if context is not None and redirect_port:
            redirect_runner = web.AppRunner(redirect_app(settings.server.port), access_log=None)
            await redirect_runner.setup()
            runners.append(redirect_runner)
            await _listen(redirect_runner, settings.server.host, redirect_port, None)
    except BaseException:
        for each in reversed(runners):
            await each.cleanup()
        raise
    print(f"Zhuandi is serving on {settings.base_url}  (Ctrl-C stops it)", flush=True)
    if pool is not None:
        print(f"with {pool.count} media worker process(es)", flush=True)
    if demo:
        print_demo_links(settings, app[TOKENS].issue)
    try:
        await stop.wait()
    finally:
        print("Zhuandi is stopping…", flush=True)
        try:
            async with asyncio.timeout(SHUTDOWN_SECONDS):
                for each in reversed(runners):
                    await each.cleanup()
        except TimeoutError:
            logger.error("shutdown took over %.0f s; exiting anyway", SHUTDOWN_SECONDS)


async def _listen(
    runner: web.AppRunner, host: str, port: int, context: ssl.SSLContext | None
) -> None:
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def print_demo_links(settings: Settings, issue: Callable[[str, str, str, float], str]) -> None:
    ttl = parse_duration(settings.tokens.default_ttl)
    base = settings.base_url
    teacher = issue(DEMO_LESSON, "teacher", "主讲教室", ttl)
    print(f"teacher: {base}/lesson/{DEMO_LESSON}/teacher?token={teacher}")
    for i in range(1, DEMO_CLASSROOMS + 1):
        token = issue(DEMO_LESSON, "classroom", f"接收教室 {i}", ttl)
        print(f"classroom {i}: {base}/lesson/{DEMO_LESSON}/classroom?token={token}")
    sys.stdout.flush()
