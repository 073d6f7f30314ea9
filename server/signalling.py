"""The signalling WebSocket (docs/protocol.md): join, offer/answer, ICE, state."""

import asyncio
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiortc import RTCIceServer

from media.background import spawn
from media.downlink import CAPS
from server.errors import UserError
from server.keys import LESSONS, SETTINGS, SOCKETS, TOKENS
from server.peer import Peer
from server.protocol import MAX_MESSAGE_BYTES, Message, parse_candidate, parse_message
from server.security import RateLimit, check_origin
from server.tokens import ANY_LESSON
from server.turn import ice_servers_for

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0
HEARTBEAT = 5.0  # a silent socket is found dead within about this long
MESSAGES_PER_SECOND = 20.0
MESSAGE_BURST = 60.0
MAX_REFUSED = 200  # refused messages before the connection is closed


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    check_origin(request, request.app[SETTINGS].server.allowed_origins)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    connection = _Connection(request.app, ws)
    try:
        await connection.run()
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


class _Connection:
    """One socket: reads messages in order, writes from the peer's outbox."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse) -> None:
        self.app = app
        self.ws = ws
        self.peer: Peer | None = None
        self._writer: asyncio.Task[None] | None = None
        self._limit = RateLimit(MESSAGES_PER_SECOND, MESSAGE_BURST)

    async def run(self) -> None:
        try:
            await self._read_join()
            if self.peer is not None:
                await self._read_messages()
        finally:
            await self._finish()

    async def _read_join(self) -> None:
        try:
            async with asyncio.timeout(JOIN_TIMEOUT):
                while self.peer is None:
                    text = await self._next_text()
                    if text is None:
                        return
                    try:
                        message = parse_message(text)
                        if message.type != "join":
                            raise UserError("not_joined", "send 'join' with your token first")
                        await self._join(message)
                    except UserError as exc:
                        await self._send_now(exc.to_json())
                        if exc.fatal:
                            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION)
                            return
        except TimeoutError:
            await self._send_now(
                {
                    "type": "error",
                    "code": "not_joined",
                    "message": "no 'join' within 10 s",
                    "fatal": True,
                }
            )
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION)

    async def _join(self, message: Message) -> None:
        tokens = self.app[TOKENS]
        grant = tokens.verify(message.get("token"))
        tokens.check(grant, lesson=message.get("lesson"), role=message.get("role"))
        lessons = self.app[LESSONS]
        if grant.lesson == ANY_LESSON:
            lesson_id = message.get("lesson")
            if not lesson_id:
                raise UserError("bad_message", "an observer link for every lesson must name one")
            if lessons.get(lesson_id) is None:
                raise UserError("not_live", f"lesson {lesson_id} is not running now", fatal=True)
        else:
            lesson_id = grant.lesson
        lesson = lessons.open(lesson_id)
        peer = Peer(grant, lesson, on_overflow=lambda: self._close_soon())
        replaced = lesson.occupant(peer.seat)  # the same link opened again elsewhere
        if replaced is not None:  # its seat, with its stage, hand and mute, passes on
            replaced.send(
                {
                    "type": "error",
                    "code": "replaced",
                    "fatal": True,
                    "message": "this page was opened again elsewhere",
                }
            )
            await lessons.leave(replaced)
        try:
            lesson.add(peer)
        except UserError:
            lessons.discard_if_empty(lesson)
            raise
        self.peer = peer
        self._writer = asyncio.ensure_future(self._write(peer))
        settings = self.app[SETTINGS]
        peer.send(
            {
                "type": "joined",
                "peer": peer.seat,
                "role": peer.role,
                "name": peer.name,
                "lesson": lesson.id,
                "iceServers": ice_servers_for(settings.media, f"{lesson.id}-{peer.id}"),
                "videoCodec": settings.media.video_codec,
            }
        )
        lesson.changed()

    async def _read_messages(self) -> None:
        assert self.peer is not None
        while not self.peer.closed:
            text = await self._next_text()
            if text is None:
                return
            if not self._limit.allow():
                if self._limit.refused > MAX_REFUSED:
                    self.peer.send(
                        {
                            "type": "error",
                            "code": "rate_limited",
                            "fatal": True,
                            "message": "too many messages; the connection is closed",
                        }
                    )
                    return
                self.peer.send(
                    {"type": "error", "code": "rate_limited", "message": "too many messages"}
                )
                continue
            try:
                await self._handle(parse_message(text))
            except UserError as exc:
                self.peer.send(exc.to_json())
                if exc.fatal:
                    return
            except Exception:
                logger.exception("%r failed to handle a message", self.peer)
                self.peer.send(
                    {
                        "type": "error",
                        "code": "internal",
                        "message": "the server could not handle that message",
                    }
                )

    async def _handle(self, message: Message) -> None:
        peer = self.peer
        assert peer is not None
        if message.type == "offer":
            settings = self.app[SETTINGS]
            sdp = await peer.negotiate(
                message.get("sdp"),
                _server_ice_servers(),
                settings.media.video_codec,
                message.get("media"),
            )
            peer.send({"type": "answer", "sdp": sdp})
        elif message.type == "candidate":
            await peer.add_candidate(parse_candidate(message.get("candidate")))
        elif message.type == "quality":
            if peer.role == "teacher":
                raise UserError("forbidden", "only classrooms choose their received quality")
            cap = message.get("cap")
            if cap not in CAPS:
                raise UserError("bad_message", f"'quality.cap' must be one of {', '.join(CAPS)}")
            peer.set_cap(cap)
        elif message.type == "hand":
            _require(peer, "classroom", "raises a hand")
            peer.lesson.raise_hand(peer, bool(message.get("up")))
        elif message.type == "stage":
            _require(peer, "teacher", "brings a classroom on stage")
            peer.lesson.set_stage(message.get("peer"))
        elif message.type == "mute":
            _require(peer, "teacher", "mutes a classroom")
            peer.lesson.mute(message.get("peer"), bool(message.get("on")))
        elif message.type == "mute_all":
            _require(peer, "teacher", "mutes the classrooms")
            peer.lesson.mute_all(bool(message.get("on")))
        elif message.type == "chat":
            if peer.role not in ("teacher", "classroom"):
                raise UserError("forbidden", "observers watch unseen and do not chat")
            peer.lesson.post_chat(peer, message.get("text"))
        elif message.type == "record":
            if peer.role != "teacher":
                raise UserError("forbidden", "only the teacher turns recording on or off")
            await peer.lesson.set_recording(bool(message.get("on")))
        elif message.type == "stop":
            await peer.close_media()
        elif message.type == "leave":
            peer.left = True
            peer.closed = True
        elif message.type == "ping":
            peer.send({"type": "pong"})
        elif message.type == "join":
            raise UserError("already_joined", "this socket has already joined")

    async def _next_text(self) -> str | None:
        message = await self.ws.receive()
        if message.type == WSMsgType.TEXT:
            return str(message.data)
        if message.type == WSMsgType.BINARY:
            await self._send_now(
                {
                    "type": "error",
                    "code": "bad_message",
                    "message": "binary frames are not part of the protocol",
                    "fatal": True,
                }
            )
            await self.ws.close(code=WSCloseCode.UNSUPPORTED_DATA)
        return None

    async def _send_now(self, data: dict[str, Any]) -> None:
        if not self.ws.closed:
            try:
                await self.ws.send_json(data)
            except ConnectionError:
                pass

    async def _write(self, peer: Peer) -> None:
        code = WSCloseCode.OK  # a peer that left, or a socket that went away
        try:
            while True:
                data = await peer.outbox.get()
                if data is None:
                    break
                await self.ws.send_json(data)
                if data.get("fatal"):
                    code = WSCloseCode.POLICY_VIOLATION  # docs/protocol.md: fatal errors
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            peer.closed = True
            if not self.ws.closed:
                await self.ws.close(code=code)

    def _close_soon(self) -> None:
        if self.peer is not None:
            self.peer.closed = True
        spawn(self.ws.close(code=WSCloseCode.POLICY_VIOLATION), "closing a socket")

    async def _finish(self) -> None:
        peer = self.peer
        if peer is not None:
            peer.closed = True
            if peer.lesson.peers.get(peer.id) is peer:
                await self.app[LESSONS].leave(peer)
            if self._writer is not None:
                # let a final error reach the client, then stop the writer
                try:
                    peer.outbox.put_nowait(None)
                except asyncio.QueueFull:
                    pass
                try:
                    await asyncio.wait_for(asyncio.shield(self._writer), 2.0)
                except (TimeoutError, asyncio.CancelledError):
                    self._writer.cancel()
        if not self.ws.closed:
            await self.ws.close()


def _require(peer: Peer, role: str, what: str) -> None:
    if peer.role != role:
        raise UserError("forbidden", f"only the {role} {what}")


def _server_ice_servers() -> list[RTCIceServer]:
    # The server sits on a reachable address; it needs no STUN or TURN of its own.
    return []
