"""`zhuandi classroom URL`: join a lesson from a script, with aiortc.

With a classroom or observer URL it receives the teacher: `--record FILE` saves the
video and audio as they were sent (nothing is decoded), otherwise they are decoded
and dropped, as a screen would. `--publish FILE` sends the file, looped, as the
camera and microphone: a scripted teacher with a teacher URL, a classroom's uplink
with a classroom URL.

It reconnects with backoff when the socket or the media connection drops, and
stops on a fatal error (except `shutdown`), Ctrl-C, SIGTERM or `--duration`,
always finishing the recording so that the file is complete.
"""

import asyncio
import contextlib
import random
import signal
import sys
from typing import Any

import aiohttp
import av
from aiortc import RTCSessionDescription

from recorder.writer import PacketWriter
from server.client_args import (
    EXIT_OK,
    EXIT_USAGE,
    ClientError,
    JoinUrl,
    check_options,
    parse_join_url,
)
from server.client_console import Console
from server.client_media import MediaConnection, MediaCounters
from server.client_socket import ClientSocket, ServerError, SocketClosedError

PROGRESS_EVERY = 5.0
CONNECT_TIMEOUT = 15.0
JOIN_TIMEOUT = 10.0
ANSWER_TIMEOUT = 20.0
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
STABLE_AFTER = 20.0  # a connection that lasted this long starts the backoff again
KEYFRAME_EVERY = 10.0  # so that the recording can be seeked


async def run_client(
    url: str,
    *,
    record: str | None = None,
    publish: str | None = None,
    duration: float | None = None,
    quiet: bool = False,
    quality: str | None = None,
    raise_hand: bool = False,
) -> int:
    try:
        join = parse_join_url(url)
        check_options(join, record, publish)
    except ClientError as exc:
        print(f"zhuandi classroom: {exc.message}", file=sys.stderr)
        return exc.code
    client = Client(
        join,
        record=record,
        publish=publish,
        quiet=quiet,
        quality=quality,
        raise_hand=raise_hand,
    )
    return await client.run(duration)


class Client:
    def __init__(
        self,
        join: JoinUrl,
        *,
        record: str | None,
        publish: str | None,
        quiet: bool,
        quality: str | None = None,
        raise_hand: bool = False,
    ) -> None:
        self.join = join
        self.quality = quality
        self.raise_hand = raise_hand
        self.record = record
        self.publish = publish
        self.quiet = quiet
        self.receiving = join.role != "teacher"
        self.received = MediaCounters()
        self.sent = MediaCounters()
        self.console = Console()
        self.writer: PacketWriter | None = None
        self._codec: str | None = None
        self._media: MediaConnection | None = None
        self._stop = asyncio.Event()

    async def run(self, duration: float | None) -> int:
        loop = asyncio.get_running_loop()
        signals = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread: the caller stops us
        timer = loop.call_later(duration, self._stop.set) if duration else None
        progress = None if self.quiet else asyncio.ensure_future(self._progress())
        try:
            return await self._run_sessions()
        except ClientError as exc:
            self.console.error(exc.message)
            return exc.code
        finally:
            if timer is not None:
                timer.cancel()
            if progress is not None:
                progress.cancel()
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self._close_media()
            await self._finish_recording()

    def _on_signal(self, sig: signal.Signals) -> None:
        self.console.say(f"{sig.name}: leaving the lesson")
        # a second Ctrl-C is the default one again, in case leaving hangs
        asyncio.get_running_loop().remove_signal_handler(sig)
        self._stop.set()

    async def _run_sessions(self) -> int:
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            started = loop.time()
            reason = await self._session()
            if reason is None:
                break
            if loop.time() - started >= STABLE_AFTER:
                backoff = BACKOFF_FIRST
            delay = backoff * random.uniform(0.8, 1.2)
            backoff = min(backoff * 2, BACKOFF_MAX)
            self.console.status = "reconnecting"
            self.console.say(f"{reason}; reconnecting in {delay:.1f} s")
            await self._pause(delay)
        return EXIT_OK

    async def _session(self) -> str | None:
        """One socket, until it closes (the reason) or we stop (None)."""
        self.console.joined = False
        self.console.status = "connecting"
        # a bound on reaching the server, none on the socket's life
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            try:
                sock = await ClientSocket.connect(http, self.join.websocket, self._on_message)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                return f"cannot reach {self.join.origin}: {exc or type(exc).__name__}"
            try:
                return await self._in_lesson(sock)
            except SocketClosedError:
                return self._lost(sock)
            except ServerError as exc:
                if exc.fatal or exc.code == "shutdown":
                    return self._lost(sock)
                raise ClientError(f"the server refused: {exc}") from None
            except TimeoutError:
                return "the server did not answer"
            finally:
                await self._close_media()
                await sock.close()

    def _lost(self, sock: ClientSocket) -> str:
        fatal = sock.fatal
        if fatal is None:
            return "the connection to the server was lost"
        if fatal.code == "shutdown":
            return "the server is restarting"
        what = "the join link was refused" if fatal.code.startswith("token_") else "refused"
        raise ClientError(f"{what}: {fatal.text} ({fatal.code})")

    async def _in_lesson(self, sock: ClientSocket) -> str | None:
        join = {"type": "join", "token": self.join.token}
        await sock.send({**join, "lesson": self.join.lesson, "role": self.join.role})
        joined = await sock.expect("joined", JOIN_TIMEOUT)
        self._on_joined(joined)
        if self.quality is not None and self.join.role != "teacher":
            await sock.send({"type": "quality", "cap": self.quality})
        if self.raise_hand and self.join.role == "classroom":
            await sock.send({"type": "hand", "up": True})
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_FIRST
        while True:
            started = loop.time()
            failed = await self._connect_media(sock, joined)
            await self._first(self._stop.wait(), sock.closed.wait(), failed.wait())
            if not failed.is_set():
                break
            if loop.time() - started >= STABLE_AFTER:
                backoff = BACKOFF_FIRST
            await self._close_media()
            self.console.set_status("reconnecting")
            self.console.say(f"the media connection failed; trying again in {backoff:.0f} s")
            await self._first(self._stop.wait(), sock.closed.wait(), asyncio.sleep(backoff))
            backoff = min(backoff * 2, BACKOFF_MAX)
            if self._stop.is_set() or sock.closed.is_set():
                break
        if self._stop.is_set():
            with contextlib.suppress(SocketClosedError):
                await sock.send({"type": "leave"})
            return None
        return self._lost(sock)

    def _on_joined(self, joined: dict[str, Any]) -> None:
        codec = str(joined.get("videoCodec") or "VP8")
        if self._codec is not None and codec != self._codec:
            raise ClientError(f"the lesson's video codec changed from {self._codec} to {codec}")
        self._codec = codec
        if self.record is not None and self.writer is None:
            try:
                self.writer = PacketWriter(
                    self.record,
                    video=codec.lower(),
                    keyframe_interval=KEYFRAME_EVERY,
                    on_keyframe_needed=self._request_keyframe,
                )
            except (ValueError, OSError) as exc:
                raise ClientError(f"cannot record to {self.record}: {exc}", EXIT_USAGE) from None
        role, name = joined.get("role"), joined.get("name")
        status = self.console.status
        self.console.say(f"joined lesson {joined.get('lesson')} as {role} {name!r}: {status}")
        self.console.joined = True

    async def _connect_media(self, sock: ClientSocket, joined: dict[str, Any]) -> asyncio.Event:
        """Offer a new media connection; the event is set if it fails."""
        assert self._codec is not None
        try:
            media = MediaConnection(
                list(joined.get("iceServers") or []),
                self._codec,
                receive=(self.received, self.writer) if self.receiving else None,
                publish=(self.sent, self.publish) if self.publish is not None else None,
            )
        except (OSError, av.FFmpegError) as exc:
            raise ClientError(f"cannot play {self.publish}: {exc}", EXIT_USAGE) from None
        if self.writer is not None:
            self.writer.restart()
        self._media = media
        pc = media.pc
        failed = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if self._media is media and pc.connectionState in ("failed", "closed"):
                failed.set()

        await pc.setLocalDescription(await pc.createOffer())
        offer = {"type": "offer", "sdp": pc.localDescription.sdp, "media": media.layout}
        await sock.send(offer)
        answer = await sock.expect("answer", ANSWER_TIMEOUT)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        media.start()  # no await since setRemoteDescription: before the receivers start
        return failed

    def _on_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == "error":  # one that nothing waited for, not fatal
            self.console.say(f"the server says: {message.get('message')} ({message.get('code')})")
        if message.get("type") != "state":
            return
        teacher = message.get("teacher") or {}
        if self.join.role == "teacher":
            live = message.get("media") == "connected"
            self.console.set_status("live" if live else "connecting")
        elif teacher.get("live"):
            self.console.set_status("live")
        else:
            self.console.set_status("waiting for the teacher")

    def _request_keyframe(self) -> None:
        if self._media is not None:
            self._media.request_keyframe()

    async def _close_media(self) -> None:
        media, self._media = self._media, None
        if media is not None:
            await media.close()

    async def _finish_recording(self) -> None:
        if self.writer is not None:
            await self.writer.aclose()
            self.console.recorded(self.writer)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            if self._media is not None:
                self._media.sync()
            self.console.progress(
                self.received if self.receiving else None,
                self.sent if self.publish is not None else None,
                self.writer,
            )

    # -- waiting --------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        await self._first(self._stop.wait(), asyncio.sleep(seconds))

    @staticmethod
    async def _first(*aws: Any) -> None:
        tasks = [asyncio.ensure_future(a) for a in aws]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
