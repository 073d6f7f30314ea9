"""The client half of the signalling protocol (docs/protocol.md) that the bench needs:
join, then one offer and its answer. Other messages (state, pong) are dropped."""

import asyncio
import base64
import json
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

MEDIA_TIMEOUT = 20.0


def lesson_of(token: str) -> str:
    """The lesson a token is for (read, not verified: the server verifies it)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["lesson"])


class SignallingError(RuntimeError):
    """The server refused the join or the offer, or did not answer in time."""


class Signalling:
    def __init__(self, base_url: str) -> None:
        self._url = base_url.replace("http", "ws", 1) + "/ws"
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def join(self, token: str, role: str) -> dict[str, Any]:
        """Join the lesson the token names."""
        lesson = lesson_of(token)
        self._session = aiohttp.ClientSession()
        async with asyncio.timeout(MEDIA_TIMEOUT):
            self._ws = await self._session.ws_connect(self._url)
        self._reader = asyncio.ensure_future(self._read())
        await self._ws.send_json({"type": "join", "token": token, "lesson": lesson, "role": role})
        return await self._reply("joined")

    async def negotiate(self, pc: RTCPeerConnection) -> None:
        """Offer `pc`'s media, apply the answer (which carries all the server's ICE
        candidates), and wait until the connection is up."""
        assert self._ws is not None
        await pc.setLocalDescription(await pc.createOffer())
        await self._ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
        answer = await self._reply("answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        async with asyncio.timeout(MEDIA_TIMEOUT):
            while pc.connectionState != "connected":
                if pc.connectionState in ("failed", "closed"):
                    raise SignallingError(f"media connection {pc.connectionState}")
                await asyncio.sleep(0.05)

    async def _reply(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(MEDIA_TIMEOUT):
            while True:
                message = await self._replies.get()
                if message.get("type") == "error":
                    raise SignallingError(f"{message.get('code')}: {message.get('message')}")
                if message.get("type") == kind:
                    return message

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                data = message.json()
                if data.get("type") in ("joined", "answer", "error"):
                    self._replies.put_nowait(data)
        self._replies.put_nowait({"type": "error", "code": "closed", "message": "socket closed"})

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
