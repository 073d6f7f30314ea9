"""The server's side of the pre-class line check (server/linecheck.py): bytes to
download, a sink to upload to, a WebRTC data channel that echoes, and the result
stored per classroom. Every route needs the classroom's device token."""

import asyncio
import logging
import math
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiortc import RTCDataChannel, RTCSessionDescription

from media.peer import create_peer_connection
from server.errors import UserError
from server.keys import CLOCK, COUNTY
from server.room import check_json, device_classroom

MAX_BYTES = 8 << 20
CHUNK = 64 << 10
ECHO_SECONDS = 20.0  # an echo connection lives at most this long
MAX_ECHOES = 8
MAX_MESSAGE = 256

BLOCK: web.AppKey[bytes] = web.AppKey("linecheck_block")
ECHOES: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("linecheck_echoes")

logger = logging.getLogger(__name__)


async def download(request: web.Request) -> web.StreamResponse:
    """`bytes` random bytes (incompressible, never cached)."""
    device_classroom(request)
    try:
        size = int(request.query.get("bytes", "262144"))
    except ValueError:
        raise UserError("bad_request", "bytes must be a number") from None
    if not 1 <= size <= MAX_BYTES:
        raise UserError("bad_request", f"bytes must be between 1 and {MAX_BYTES}")
    response = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-store"}
    )
    response.content_length = size
    await response.prepare(request)
    block = request.app[BLOCK]
    sent = 0
    while sent < size:
        piece = block[sent % len(block) :][: min(CHUNK, size - sent)]
        await response.write(piece)
        sent += len(piece)
    await response.write_eof()
    return response


async def upload(request: web.Request) -> web.Response:
    """Read and drop what is sent; say how much arrived."""
    device_classroom(request)
    received = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        received += len(chunk)
        if received > MAX_BYTES:
            raise UserError("too_large", f"send at most {MAX_BYTES} bytes", status=413)
    return web.json_response({"bytes": received}, headers={"Cache-Control": "no-store"})


async def echo(request: web.Request) -> web.Response:
    """Answer an offer with a data channel that sends every message back."""
    device_classroom(request)
    echoes = request.app[ECHOES]
    if len(echoes) >= MAX_ECHOES:
        raise UserError("busy", "too many line checks at once; try again shortly", status=503)
    body = await _json(request)
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or len(sdp) > 20_000:
        raise UserError("bad_request", "send an SDP offer as 'sdp'")
    pc = create_peer_connection()

    @pc.on("datachannel")
    def on_channel(channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(message: object) -> None:
            if isinstance(message, str) and len(message) <= MAX_MESSAGE:
                channel.send(message)

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as exc:  # aiortc raises many kinds on a bad offer
        await asyncio.shield(pc.close())
        raise UserError("bad_sdp", f"the offer cannot be used: {exc}") from None
    task = asyncio.ensure_future(_hold(pc))
    echoes.add(task)
    task.add_done_callback(echoes.discard)
    return web.json_response({"sdp": pc.localDescription.sdp})


async def _hold(pc: Any) -> None:
    """The echo connection's owner: it closes it after ECHO_SECONDS, or at shutdown."""
    try:
        await asyncio.sleep(ECHO_SECONDS)
    finally:
        await asyncio.shield(pc.close())


async def result(request: web.Request) -> web.Response:
    """Keep what the page measured; answer with the verdict and starting layer."""
    classroom = device_classroom(request)
    body = await _json(request)
    down = _number(body, "down_bps", 0, 10e9)
    up = _number(body, "up_bps", 0, 10e9)
    rtt = _number(body, "rtt_ms", 0, 60_000, optional=True)
    loss = _number(body, "loss", 0, 1, optional=True)
    assert down is not None and up is not None
    check = request.app[COUNTY].checks.add(
        classroom.id, request.app[CLOCK].now(), down, up, rtt, loss
    )
    logger.info(
        "classroom=%s line check: down %.0f up %.0f rtt %s loss %s -> %s",
        classroom.id,
        down,
        up,
        rtt,
        loss,
        check.layer,
    )
    return web.json_response(check_json(check))


async def history(request: web.Request) -> web.Response:
    classroom = device_classroom(request)
    checks = request.app[COUNTY].checks.history(classroom.id, limit=50)
    return web.json_response({"checks": [check_json(c) for c in checks]})


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise UserError("bad_request", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise UserError("bad_request", "the body must be a JSON object")
    return body


def _number(
    body: dict[str, Any], name: str, low: float, high: float, optional: bool = False
) -> float | None:
    value = body.get(name)
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise UserError("bad_request", f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


async def _echoes_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    echoes = app[ECHOES]
    tasks = list(echoes)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def setup_linecheck(app: web.Application) -> None:
    app[BLOCK] = secrets.token_bytes(1 << 20)
    app[ECHOES] = set()
    app.cleanup_ctx.append(_echoes_ctx)
    base = "/api/room/{classroom}/check"
    app.router.add_get(f"{base}/download", download)
    app.router.add_post(f"{base}/upload", upload)
    app.router.add_post(f"{base}/echo", echo)
    app.router.add_post(base, result)
    app.router.add_get(base, history)
