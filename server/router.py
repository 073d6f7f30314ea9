"""The front process with media workers: it routes each lesson to its worker.

A page's signalling socket is joined here (the token says which lesson), then piped
to the socket of the worker that holds the lesson; media flows between the page and
that worker directly. Lesson statistics go to the lesson's worker; the list of live
lessons, /metrics and /healthz gather what every worker says.
"""

import asyncio
import json
import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from server.api import STATS_ROLES, bearer_grant
from server.errors import UserError
from server.keys import SETTINGS, SOCKETS, TOKENS
from server.placement import Placement
from server.protocol import MAX_MESSAGE_BYTES, parse_message
from server.security import check_origin
from server.signalling import HEARTBEAT, JOIN_TIMEOUT
from server.tokens import ANY_LESSON
from server.workers import Worker, WorkerPool

logger = logging.getLogger(__name__)

POOL = web.AppKey("workers", WorkerPool)
PLACEMENT = web.AppKey("placement", Placement)
HTTP = web.AppKey("worker_http", aiohttp.ClientSession)

SHUTDOWN = {
    "type": "error",
    "code": "shutdown",
    "fatal": True,
    "message": "the lesson's media server restarted; the page reconnects by itself",
}


def setup_router(app: web.Application, pool: WorkerPool) -> None:
    app[POOL] = pool
    app[PLACEMENT] = Placement(app[SETTINGS].server.reconnect_grace)
    pool.on_exit.append(lambda worker: app[PLACEMENT].forget_worker(worker.index))
    app.cleanup_ctx.append(_http_ctx)
    app.router.add_get("/ws", routed_websocket)
    app.router.add_get("/api/lessons/{lesson}/stats", routed_stats)
    app.router.add_get("/api/live", gathered_live)
    app.router.add_get("/metrics", gathered_metrics)
    app.router.add_get("/healthz", gathered_health)


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=None, connect=5)
    # Every signalling socket holds a connection to its worker for as long as it is
    # open: no pool limit (aiohttp's default of 100 made the 101st classroom wait,
    # then fail as if its worker had restarted)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        app[HTTP] = session
        yield


# -- signalling --------------------------------------------------------------------


async def routed_websocket(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    check_origin(request, app[SETTINGS].server.allowed_origins)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    app[SOCKETS].add(ws)
    try:
        joined = await _read_join(app, ws)
        if joined is not None:
            lesson, text = joined
            await _pipe(app, ws, lesson, text)
    finally:
        app[SOCKETS].discard(ws)
        if not ws.closed:
            await ws.close()
    return ws


async def _read_join(app: web.Application, ws: web.WebSocketResponse) -> tuple[str, str] | None:
    """Read until a join with a valid token: (its lesson, the message)."""
    try:
        async with asyncio.timeout(JOIN_TIMEOUT):
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    return None
                try:
                    parsed = parse_message(str(message.data))
                    if parsed.type != "join":
                        raise UserError("not_joined", "send 'join' with your token first")
                    tokens = app[TOKENS]
                    grant = tokens.verify(parsed.get("token"))
                    tokens.check(grant, lesson=parsed.get("lesson"), role=parsed.get("role"))
                    lesson = grant.lesson
                    if lesson == ANY_LESSON:
                        lesson = parsed.get("lesson") or ""
                        if app[PLACEMENT].worker_of(lesson) is None:
                            raise UserError(
                                "not_live", f"lesson {lesson} is not running now", fatal=True
                            )
                    return lesson, str(message.data)
                except UserError as exc:
                    await ws.send_json(exc.to_json())
                    if exc.fatal:
                        await ws.close(code=WSCloseCode.POLICY_VIOLATION)
                        return None
    except TimeoutError:
        await ws.send_json(
            {
                "type": "error",
                "code": "not_joined",
                "message": "no 'join' within 10 s",
                "fatal": True,
            }
        )
    return None


async def _pipe(app: web.Application, ws: web.WebSocketResponse, lesson: str, join: str) -> None:
    pool, placement = app[POOL], app[PLACEMENT]
    alive = [w.index for w in pool.alive()]
    if not alive:
        await ws.send_json(SHUTDOWN)
        return
    index = placement.place(lesson, alive)
    worker = pool.workers[index]
    try:
        try:
            upstream = await app[HTTP].ws_connect(
                worker.url + "/ws", max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT
            )
        except (aiohttp.ClientError, OSError):
            await ws.send_json(SHUTDOWN)
            return
        async with upstream:
            await upstream.send_str(join)
            down = asyncio.ensure_future(_forward(upstream, ws))
            up = asyncio.ensure_future(_forward(ws, upstream))
            done, pending = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if down in done and not down.result() and not ws.closed:
                # the worker closed without a word: it died under the lesson
                await ws.send_json(SHUTDOWN)
    finally:
        placement.release(lesson)


async def _forward(source: Any, target: Any) -> bool:
    """Copy messages until `source` closes; whether the last one was a fatal error
    (the closing side said why)."""
    fatal = False
    async for message in source:
        if message.type == WSMsgType.TEXT:
            fatal = '"fatal": true' in message.data
            await target.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await target.send_bytes(message.data)
        else:
            break
    return fatal


# -- HTTP ----------------------------------------------------------------------------


async def routed_stats(request: web.Request) -> web.Response:
    lesson = request.match_info["lesson"]
    index = request.app[PLACEMENT].worker_of(lesson)
    worker = request.app[POOL].workers[index] if index is not None else None
    if worker is None or not worker.alive:
        bearer_grant(request)  # the token is still checked, as a worker would
        raise UserError("not_live", f"lesson {lesson} is not running now", status=404)
    return await _forward_get(request, worker)


async def _forward_get(request: web.Request, worker: Worker) -> web.Response:
    headers = {"Authorization": request.headers.get("Authorization", "")}
    url = worker.url + request.rel_url.path_qs
    async with request.app[HTTP].get(url, headers=headers) as response:
        body = await response.read()
        return web.Response(body=body, status=response.status, content_type=response.content_type)


async def _gather(request: web.Request, path: str) -> list[tuple[int, bytes]]:
    headers = {"Authorization": request.headers.get("Authorization", "")}
    session = request.app[HTTP]

    async def one(worker: Worker) -> tuple[int, bytes]:
        try:
            async with session.get(worker.url + path, headers=headers) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, OSError):
            return 503, b""

    return await asyncio.gather(*(one(w) for w in request.app[POOL].alive()))


async def gathered_live(request: web.Request) -> web.Response:
    grant = bearer_grant(request)  # refused here as a worker would refuse it
    if grant.role not in STATS_ROLES:
        raise UserError("forbidden", "only observers and teachers list live lessons", status=403)
    lessons: list[Any] = []
    for status, body in await _gather(request, request.rel_url.path_qs):
        if status == 200:
            lessons.extend(json.loads(body)["lessons"])
    return web.json_response({"lessons": lessons})


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


async def gathered_metrics(request: web.Request) -> web.Response:
    """Every worker's metrics, summed sample by sample."""
    headers: list[str] = []
    totals: dict[str, float] = defaultdict(float)
    order: list[str] = []
    for status, body in await _gather(request, "/metrics"):
        if status != 200:
            continue
        for line in body.decode().splitlines():
            if line.startswith("#"):
                if line not in headers:
                    headers.append(line)
                continue
            match = _SAMPLE.match(line)
            if match is None:
                continue
            name, value = match.groups()
            if name not in totals:
                order.append(name)
            totals[name] += float(value)
    lines = headers + [f"{name} {totals[name]}" for name in order]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def gathered_health(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    workers = []
    lessons = peers = 0
    placed = request.app[PLACEMENT].lessons()
    results = dict(
        zip([w.index for w in pool.alive()], await _gather(request, "/healthz"), strict=True)
    )
    for worker in pool.workers:
        status, body = results.get(worker.index, (503, b""))
        info: dict[str, Any] = {
            "index": worker.index,
            "alive": status == 200,
            "restarts": worker.restarts,
            "pid": worker.process.pid if worker.process is not None else None,
            "placed": sorted(k for k, v in placed.items() if v == worker.index),
        }
        if status == 200:
            data = json.loads(body)
            info["lessons"], info["peers"] = data.get("lessons", 0), data.get("peers", 0)
            lessons += info["lessons"]
            peers += info["peers"]
        workers.append(info)
    healthy = all(w["alive"] for w in workers)
    return web.json_response(
        {
            "status": "ok" if healthy else "degraded",
            "lessons": lessons,
            "peers": peers,
            "workers": workers,
        },
        status=200 if healthy else 503,
    )
