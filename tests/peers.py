"""Real aiortc peers that join a lesson through the real server's signalling."""

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.peer import create_peer_connection
from media.receiver import ResilientReceiver
from tests.frames import AUDIO_RATE, NumberedVideoTrack, ToneAudioTrack, read_number


class SignallingClient:
    """A WebSocket to /ws that keeps every message it receives."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.messages: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._new = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession()
        self.ws = await self._session.ws_connect(self.base_url.replace("http", "ws", 1) + "/ws")
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(message.json())
                self._new.set()
        self._new.set()

    async def send(self, data: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(data)

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def wait_for(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first message of `kind` (whose fields equal `match`) not yet consumed."""
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self.messages):
                if message.get("type") == kind and all(
                    message.get(k) == v for k, v in match.items()
                ):
                    del self.messages[i]
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind!r} message; got {self.messages!r}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed

    async def close(self, leave: bool = False) -> None:
        """Close the socket; with `leave`, say goodbye first (the seat is given up at
        once instead of waiting for a reconnection)."""
        if leave and self.ws is not None and not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_json({"type": "leave"})
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader
        if self._session is not None:
            await self._session.close()


class LessonPeer:
    """Joins with a token, then publishes or subscribes over one RTCPeerConnection."""

    def __init__(self, base_url: str, token: str) -> None:
        self.signalling = SignallingClient(base_url)
        self.token = token
        self.pc = RTCPeerConnection()
        self.joined: dict[str, Any] = {}

    async def join(self) -> dict[str, Any]:
        await self.signalling.connect()
        await self.signalling.send({"type": "join", "token": self.token})
        self.joined = await self.signalling.wait_for("joined")
        return self.joined

    async def negotiate(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.signalling.send({"type": "offer", "sdp": self.pc.localDescription.sdp})
        answer = await self.signalling.wait_for("answer", timeout=15)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self.answered()

    def answered(self) -> None:
        """Called right after the answer is applied, before any media flows."""

    async def wait_connected(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pc.connectionState != "connected":
            if time.monotonic() > deadline:
                raise TimeoutError(f"connection state stayed {self.pc.connectionState}")
            await asyncio.sleep(0.05)

    async def close(self, leave: bool = True) -> None:
        """Leave the lesson (as a page's "leave" does), or with `leave=False` just
        drop the connection, as a lost line or a closed laptop would."""
        await asyncio.shield(self.pc.close())
        await self.signalling.close(leave=leave)


class Teacher(LessonPeer):
    """Publishes numbered video frames and a tone."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        width: int = 640,
        height: int = 360,
        tone: float = 440.0,
        first: int = 1,
    ) -> None:
        super().__init__(base_url, token)
        self.video = NumberedVideoTrack(width, height, first=first)
        # courseware is a track of its own (aiortc: one sender per track), numbered apart
        self.courseware = NumberedVideoTrack(width, height, first=first + 500_000)
        self.audio = ToneAudioTrack(tone)

    async def publish(self) -> None:
        self.pc.addTransceiver(self.audio, direction="sendonly")
        self.pc.addTransceiver(self.video, direction="sendonly")
        await self.negotiate()


class Classroom(LessonPeer):
    """Receives, decodes and checks what arrives. With `resilient`, its receivers use
    the Python client's lossy-line receive path (media.receiver.ResilientReceiver)."""

    def __init__(self, base_url: str, token: str, *, resilient: bool = False) -> None:
        super().__init__(base_url, token)
        self.resilient = resilient
        self.receivers: dict[str, ResilientReceiver] = {}
        self.numbers: list[int] = []
        self.damaged = 0
        self.sizes: set[tuple[int, int]] = set()
        self.last_size: tuple[int, int] | None = None
        self.arrivals: list[tuple[int, float]] = []
        self.audio_chunks: list[np.ndarray] = []
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._tasks.append(asyncio.ensure_future(self._read_video(track)))
            else:
                self._tasks.append(asyncio.ensure_future(self._read_audio(track)))

    async def subscribe(self) -> None:
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        await self.negotiate()

    def answered(self) -> None:
        if not self.resilient:
            return
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            if kind in ("audio", "video") and kind not in self.receivers:
                self.receivers[kind] = ResilientReceiver(transceiver.receiver, kind)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                number = read_number(frame)
                self.sizes.add((frame.width, frame.height))
                self.last_size = (frame.width, frame.height)
                if number is None:
                    self.damaged += 1
                else:
                    self.numbers.append(number)
                    self.arrivals.append((number, time.monotonic()))

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                data = frame.to_ndarray()
                if data.shape[0] == 1 and frame.layout.nb_channels == 2:
                    data = data.reshape(-1, 2)[:, 0]  # packed stereo: take the left channel
                else:
                    data = data[0]
                self.audio_chunks.append(data.astype(np.float64))

    def audio(self) -> np.ndarray:
        return np.concatenate(self.audio_chunks) if self.audio_chunks else np.zeros(0)

    @property
    def audio_rate(self) -> int:
        return AUDIO_RATE

    async def wait_frames(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.numbers) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {len(self.numbers)} numbered frames arrived ({self.damaged} damaged)"
                )
            await asyncio.sleep(0.05)

    async def close(self, leave: bool = True) -> None:
        for receiver in self.receivers.values():
            receiver.close()
        await super().close(leave)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class LayoutPeer(LessonPeer):
    """Publishes and receives named streams (docs/protocol.md, `offer.media`), and
    checks what arrives on each: numbered frames for video, samples for audio."""

    def __init__(
        self,
        base_url: str,
        token: str,
        layout: list[str],
        *,
        tone: float = 440.0,
        first: int = 1,
        width: int = 320,
        height: int = 240,
    ) -> None:
        super().__init__(base_url, token)
        # several video m-lines need MAX_BUNDLE in aiortc (research file §5.3)
        self.pc = create_peer_connection()
        self.layout = layout
        self.video = NumberedVideoTrack(width, height, first=first)
        # courseware is a track of its own (aiortc: one sender per track), numbered apart
        self.courseware = NumberedVideoTrack(width, height, first=first + 500_000)
        self.audio = ToneAudioTrack(tone)
        self.numbers: dict[str, list[int]] = {}
        self.sizes: dict[str, set[tuple[int, int]]] = {}
        self.audio_chunks: dict[str, list[np.ndarray]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        counts: dict[str, int] = {}
        for entry in self.layout:
            direction, _, name = entry.partition(":")
            kind = (
                "audio" if name in ("microphone",) or name.endswith(("-audio", "-mix")) else "video"
            )
            if direction == "send":
                track: MediaStreamTrack = (
                    self.audio
                    if kind == "audio"
                    else self.courseware
                    if name == "courseware"
                    else self.video
                )
                self.pc.addTransceiver(track, direction="sendonly")
            else:
                self.pc.addTransceiver(kind, direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.signalling.send(
            {"type": "offer", "sdp": self.pc.localDescription.sdp, "media": self.layout}
        )
        answer = await self.signalling.wait_for("answer", timeout=15)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        for entry, transceiver in zip(self.layout, self.pc.getTransceivers(), strict=True):
            direction, _, name = entry.partition(":")
            if direction != "receive":
                continue
            key = name
            if name == "grid":
                counts[name] = counts.get(name, 0) + 1
                key = f"grid{counts[name]}"
            track = transceiver.receiver.track
            reader = self._read_video if transceiver.kind == "video" else self._read_audio
            self._tasks.append(asyncio.ensure_future(reader(key, track)))

    async def _read_video(self, key: str, track: MediaStreamTrack) -> None:
        numbers = self.numbers.setdefault(key, [])
        sizes = self.sizes.setdefault(key, set())
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                sizes.add((frame.width, frame.height))
                number = read_number(frame)
                if number is not None:
                    numbers.append(number)

    async def _read_audio(self, key: str, track: MediaStreamTrack) -> None:
        chunks = self.audio_chunks.setdefault(key, [])
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                data = frame.to_ndarray()
                if data.shape[0] == 1 and frame.layout.nb_channels == 2:
                    data = data.reshape(-1, 2)[:, 0]
                else:
                    data = data[0]
                chunks.append(data.astype(np.float64))

    def samples(self, key: str, seconds: float) -> np.ndarray:
        """The last `seconds` of audio received on `key`."""
        chunks = self.audio_chunks.get(key, [])
        samples = np.concatenate(chunks) if chunks else np.zeros(0)
        return samples[-int(seconds * AUDIO_RATE) :]

    async def wait_numbers(
        self, key: str, predicate: Callable[[list[int]], bool], timeout: float = 20.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.numbers.get(key, [])):
            if time.monotonic() > deadline:
                got = self.numbers.get(key, [])
                raise TimeoutError(f"{key}: {len(got)} frames, last {got[-3:]}")
            await asyncio.sleep(0.05)

    async def close(self, leave: bool = True) -> None:
        await super().close(leave)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
