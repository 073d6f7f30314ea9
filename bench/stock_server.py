"""The baseline: aiortc's stock way to fan a stream out, for comparison with ours.

The teacher's tracks are received decoded (aiortc's receiver decodes), and
`aiortc.contrib.media.MediaRelay` hands every decoded frame to each subscriber's
RTCRtpSender, which encodes its own copy: one VP8 and one Opus encoder per
subscriber. It speaks the subset of docs/protocol.md that the bench uses (join,
offer/answer); tokens are ignored and the role comes from `join`.

Two changes from aiortc's example server, both to keep the comparison about
encoding and not about memory or bitrate:

* `relay.subscribe(track, buffered=False)`: the default buffered proxy has an
  unbounded queue that grows without end once the encoders fall behind.
* The VP8 encoders are pinned at 1.5 Mbps (aiortc's maximum), the teacher's
  bitrate, instead of following the receivers' REMB from 500 kbps.

    python -m bench.stock_server --port PORT
"""

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import vpx
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import adapter
from media.peer import create_peer_connection, prefer_codec

logger = logging.getLogger(__name__)


def pin_vp8_bitrate(bitrate: int) -> None:
    """Every aiortc VP8 encoder in this process starts at, and keeps, `bitrate`."""
    vpx.DEFAULT_BITRATE = bitrate
    current: property = vpx.Vp8Encoder.__dict__["target_bitrate"]

    def ignore(self: vpx.Vp8Encoder, value: int) -> None:
        pass

    vpx.Vp8Encoder.target_bitrate = property(current.fget, ignore)  # type: ignore[method-assign, assignment]


class StockRoom:
    """One teacher's tracks relayed to every subscriber."""

    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.tracks: dict[str, MediaStreamTrack] = {}
        self.senders: list[RTCRtpSender] = []
        self.pcs: set[RTCPeerConnection] = set()
        self._drains: list[asyncio.Task[None]] = []

    async def answer(self, role: str, sdp: str) -> tuple[RTCPeerConnection, str]:
        pc = create_peer_connection()
        self.pcs.add(pc)
        if role == "teacher":

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                self.tracks[track.kind] = track
                # Keep the relay reading (and the decoded frames flowing) before
                # anyone subscribes, so that no backlog builds up.
                proxy = self.relay.subscribe(track, buffered=False)
                self._drains.append(asyncio.ensure_future(_drain(proxy)))

        else:
            for kind in ("audio", "video"):
                if kind not in self.tracks:
                    raise web.HTTPConflict(text="no teacher yet")
                track = self.relay.subscribe(self.tracks[kind], buffered=False)
                transceiver = pc.addTransceiver(track, direction="sendonly")
                if kind == "video":
                    prefer_codec(transceiver, "VP8")
                self.senders.append(transceiver.sender)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return pc, pc.localDescription.sdp

    async def leave(self, pc: RTCPeerConnection) -> None:
        self.pcs.discard(pc)
        self.senders = [s for s in self.senders if s not in pc.getSenders()]
        await asyncio.shield(pc.close())

    def forwarded(self) -> int:
        return sum(adapter.sender_counters(sender)[0] for sender in self.senders)

    async def close(self) -> None:
        for task in self._drains:
            task.cancel()
        for pc in list(self.pcs):
            await self.leave(pc)


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


ROOM = web.AppKey("room", StockRoom)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    room = request.app[ROOM]
    role = "classroom"
    pc: RTCPeerConnection | None = None
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            data: dict[str, Any] = message.json()
            if data.get("type") == "join":
                role = str(data.get("role") or "classroom")
                await ws.send_json({"type": "joined", "role": role, "videoCodec": "VP8"})
            elif data.get("type") == "offer":
                if pc is not None:
                    await room.leave(pc)
                try:
                    pc, sdp = await room.answer(role, str(data["sdp"]))
                except web.HTTPConflict:
                    await ws.send_json({"type": "error", "code": "no_teacher", "message": "wait"})
                    continue
                await ws.send_json({"type": "answer", "sdp": sdp})
    finally:
        if pc is not None:
            await room.leave(pc)
    return ws


async def metrics(request: web.Request) -> web.Response:
    packets = request.app[ROOM].forwarded()
    return web.Response(text=f"zhuandi_forwarded_packets_total {packets}.0\n")


async def healthz(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    return web.json_response({"status": "ok", "teacher": sorted(room.tracks)})


def create_app() -> web.Application:
    adapter.set_host_addresses(["127.0.0.1"])
    pin_vp8_bitrate(vpx.MAX_BITRATE)
    app = web.Application()
    app[ROOM] = StockRoom()
    app.router.add_get("/ws", websocket)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)

    async def close_room(app: web.Application) -> None:
        await app[ROOM].close()

    app.on_shutdown.append(close_room)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(create_app(), handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"stock server on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
