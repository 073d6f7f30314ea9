"""The signalling socket of `zhuandi classroom` (docs/protocol.md), client side.

A reader task takes every message as it comes. `joined` and `answer` go to whoever
awaits them with `expect()`; an `error` fails that wait, and a fatal one is kept
for when the socket closes; everything else (`state`, `pong`) goes to a callback.
"""

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp

HEARTBEAT = 15.0


class SocketClosedError(ConnectionError):
    """The socket closed while we waited for a message."""


class ServerError(Exception):
    """The server answered with an `error` message."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.code = str(message.get("code") or "unknown")
        self.text = str(message.get("message") or "no message")
        self.fatal = bool(message.get("fatal"))
        super().__init__(f"{self.text} ({self.code})")


class ClientSocket:
    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, on_message: Callable[[dict[str, Any]], None]
    ) -> None:
        self.ws = ws
        self.fatal: ServerError | None = None
        self.closed = asyncio.Event()
        self._on_message = on_message
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(
        cls,
        session: aiohttp.ClientSession,
        url: str,
        on_message: Callable[[dict[str, Any]], None],
    ) -> "ClientSocket":
        ws = await session.ws_connect(url, heartbeat=HEARTBEAT, autoping=True)
        return cls(ws, on_message)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(message.data)
                except json.JSONDecodeError:
                    continue
                if isinstance(data, dict):
                    self._dispatch(data)
        finally:
            self.closed.set()
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(self.fatal or SocketClosedError())
            self._waiters.clear()

    def _dispatch(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "error":
            error = ServerError(data)
            if error.fatal:
                self.fatal = error
            waiting = [w for w in self._waiters.values() if not w.done()]
            for waiter in waiting:
                waiter.set_exception(error)
            self._waiters.clear()
            if waiting or error.fatal:
                return
        elif isinstance(kind, str) and kind in self._waiters:
            waiter = self._waiters.pop(kind)
            if not waiter.done():
                waiter.set_result(data)
            return
        self._on_message(data)

    async def send(self, data: dict[str, Any]) -> None:
        if self.closed.is_set():
            raise SocketClosedError
        try:
            await self.ws.send_json(data)
        except (ConnectionError, RuntimeError) as exc:
            raise SocketClosedError from exc

    async def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        """The next `kind` message; ServerError on an error, SocketClosedError if the
        socket closes, TimeoutError if nothing comes."""
        if self.closed.is_set():
            raise self.fatal or SocketClosedError()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[kind] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.pop(kind, None)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
