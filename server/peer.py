"""One connected page or client: its socket's outbox and its media connection.

The peer owns its RTCPeerConnection and closes it in `close_media()`, always through
`asyncio.shield`: in aiortc 1.16 a second, cancelled close() breaks the first.
"""

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiortc import RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidStateError, OperationError
from aiortc.sdp import SessionDescription, candidate_from_sdp

from media.background import spawn
from media.downlink import VideoDownlink
from media.peer import create_peer_connection, prefer_codec
from media.upstream import Upstream
from server.errors import UserError
from server.layout import SEND, plan
from server.protocol import Candidate
from server.seats import seat_key
from server.streams import Down
from server.tokens import Grant

if TYPE_CHECKING:
    from server.lesson import Lesson

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 256
AUDIO_RESERVE = 40_000.0  # bits per second kept for each audio stream a peer receives
# Under congestion, video streams are served in this order (audio always comes first).
PRIORITY = {"courseware": 0, "teacher-camera": 1, "stage-camera": 2, "grid": 3}


class Peer:
    def __init__(self, grant: Grant, lesson: "Lesson", on_overflow: Callable[[], None]) -> None:
        self.id = secrets.token_hex(4)
        self.grant = grant
        self.lesson = lesson
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(OUTBOX_LIMIT)
        self._on_overflow = on_overflow
        self.pc: RTCPeerConnection | None = None
        self.media_state = "none"
        self.upstreams: list[Upstream] = []
        self.downs: list[tuple[str, Down]] = []
        self.cap = "auto"
        self.initial_layer: int | None = 0
        self.seat = seat_key(grant.role, grant.token_id, self.id)
        self.left = False  # said goodbye: its seat is given up at once
        self._retired_counters = (0, 0)
        self._heard = -1
        self._heard_at = 0.0
        self.closed = False

    @property
    def role(self) -> str:
        return self.grant.role

    @property
    def name(self) -> str:
        return self.grant.name

    def __repr__(self) -> str:
        return f"lesson={self.lesson.id} peer={self.id}"

    # -- signalling out --------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the socket. A client that stops reading is dropped
        rather than allowed to grow the server's memory."""
        if self.closed:
            return
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            logger.warning("%r outbox full, closing", self)
            self._on_overflow()

    # -- media -----------------------------------------------------------------

    async def negotiate(
        self, sdp: str, ice_servers: list[RTCIceServer], codec: str, media: object = None
    ) -> str:
        """Answer an offer with a new media connection, replacing any previous one.
        `media` names the offer's m-lines (server/layout.py)."""
        lines = plan(self.role, _offer_kinds(sdp), media)
        await self.close_media()
        pc = create_peer_connection(ice_servers)
        self.pc = pc
        self._set_media_state("connecting")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if self.pc is not pc:
                return
            if pc.connectionState == "connected":
                self._set_media_state("connected")
            elif pc.connectionState == "failed":
                logger.info("%r media connection failed", self)
                self._set_media_state("failed")
                await self.close_media(keep_state=True)

        try:
            incoming = []
            for line in lines:
                if line.direction == SEND:
                    transceiver = pc.addTransceiver(line.kind, direction="recvonly")
                    incoming.append((transceiver, line.name))
                else:
                    down = self._down(line.name)
                    transceiver = pc.addTransceiver(down.track, direction="sendonly")
                    down.bind(transceiver.sender)
                if line.kind == "video":
                    prefer_codec(transceiver, codec)
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except OperationError as exc:
                if "video" in str(exc):
                    raise UserError(
                        "codec_unsupported",
                        f"the offer has no {codec} video, which this lesson uses",
                    ) from None
                raise UserError("bad_sdp", f"the offer cannot be used: {exc}") from None
            except (ValueError, AssertionError, IndexError, KeyError) as exc:
                raise UserError("bad_sdp", f"the offer is not valid SDP: {exc}") from None
            streams = self.lesson.streams
            for transceiver, name in incoming:
                if transceiver.receiver.track is not None:
                    source = streams.source(self.seat, name)
                    self.upstreams.append(Upstream(transceiver.receiver, source))
                    streams.publisher_started(self.seat, name)
            if self.upstreams and self.role == "teacher":
                self.lesson.publishing_started()
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            await self.close_media()
            raise
        self.lesson.changed()
        return pc.localDescription.sdp

    def _down(self, name: str) -> Down:
        """A down stream for this peer; video ranks by PRIORITY when the line is short."""
        rank = PRIORITY.get(name, len(PRIORITY))

        def reserve() -> float:
            higher = sum(
                d.sent_bps
                for n, d in self.downs
                if isinstance(d, VideoDownlink) and PRIORITY.get(n, len(PRIORITY)) < rank
            )
            return self._audio_bps() + higher

        down = self.lesson.streams.down(
            self.seat,
            self.id,
            name,
            cap=self.cap,
            initial=self.initial_layer,
            reserve=reserve,
            total_sent=self._total_sent,
            on_change=self.lesson.changed,
            label=repr(self),
        )
        self.downs.append((name, down))
        return down

    def _audio_bps(self) -> float:
        audio = sum(1 for _, d in self.downs if not isinstance(d, VideoDownlink))
        return AUDIO_RESERVE * max(audio, 1)

    def _total_sent(self, covered: tuple[int, ...]) -> float:
        """What this peer's connection carries of the streams a REMB covers, plus
        audio (which shares the line)."""
        video = sum(
            d.sent_bps for _, d in self.downs if isinstance(d, VideoDownlink) and d.ssrc in covered
        )
        return video + self._audio_bps()

    @property
    def downlinks(self) -> list[VideoDownlink]:
        return [d for _, d in self.downs if isinstance(d, VideoDownlink)]

    def last_layer(self) -> int | None:
        """The layer the teacher's camera reached, kept with the seat."""
        downlink = self._main_downlink()
        return downlink.controller.layer if downlink is not None else self.initial_layer

    def _main_downlink(self) -> VideoDownlink | None:
        """The stream a classroom's quality is judged by: the teacher's camera."""
        for name, down in self.downs:
            if name == "teacher-camera" and isinstance(down, VideoDownlink):
                return down
        downlinks = self.downlinks
        return downlinks[0] if downlinks else None

    def set_cap(self, cap: str) -> None:
        """The classroom's quality choice: auto, high, low or audio."""
        self.cap = cap
        for name, down in self.downs:
            if isinstance(down, VideoDownlink) and name != "grid":
                down.set_cap(cap)
        self.lesson.changed()

    def evaluate_links(self) -> None:
        for downlink in self.downlinks:
            downlink.evaluate()

    def media_silent_for(self, now: float) -> float:
        """Seconds since this peer's media connection last showed life: receiver
        reports for what it receives, packets for what it sends. aiortc itself takes
        about 30 s to notice a dead link."""
        heard = sum(u.packets for u in self.upstreams)
        for _, down in self.downs:
            feedback = getattr(down, "feedback", None)
            if feedback is not None:
                heard += feedback.reports
        if heard != self._heard or self.media_state != "connected":
            self._heard, self._heard_at = heard, now
        return now - self._heard_at

    def link_stats(self) -> dict[str, Any]:
        downlink = self._main_downlink()
        if downlink is None:
            return {"quality": None, "cap": self.cap}
        stats = downlink.stats()
        return {
            "layer": stats.layer,
            "width": stats.width,
            "height": stats.height,
            "estimate_bps": stats.estimate_bps,
            "remb_bps": stats.remb_bps,
            "sent_bps": stats.sent_bps,
            "loss": stats.loss,
            "rtt_ms": stats.rtt_ms,
            "quality": stats.quality,
            "cap": stats.cap,
            "switches": stats.switches,
        }

    def video_state(self) -> dict[str, Any]:
        """What a classroom page shows about its own video."""
        downlink = self._main_downlink()
        if downlink is None:
            return {"layer": None, "paused": False, "reason": None, "cap": self.cap}
        stats = downlink.stats()
        paused = downlink.paused
        reason = None
        if paused:
            reason = "audio_only_chosen" if self.cap == "audio" else "line_too_slow"
        return {
            "layer": stats.layer,
            "height": stats.height,
            "paused": paused,
            "reason": reason,
            "quality": stats.quality,
            "cap": self.cap,
        }

    async def add_candidate(self, candidate: Candidate | None) -> None:
        if self.pc is None or self.pc.remoteDescription is None:
            raise UserError("bad_candidate", "send an offer before ICE candidates")
        if candidate is None:
            # End-of-candidates is not passed on. A browser's host candidates are
            # mDNS names that the server cannot resolve, so it learns the browser's
            # address from the browser's own checks (peer reflexive). Told that the
            # candidates have ended before the first check arrives, aioice fails at
            # once ("no candidate pairs"), and the page waits ~15 s for Chrome to
            # give up: half of the joins from another network did, in tests.
            return
        text = candidate.candidate
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        if not text:  # an empty candidate means end-of-candidates in browsers
            return
        try:
            ice = candidate_from_sdp(text)
        except (ValueError, AssertionError, IndexError) as exc:
            raise UserError("bad_candidate", f"cannot read ICE candidate: {exc}") from None
        ice.sdpMid = candidate.sdp_mid
        ice.sdpMLineIndex = candidate.sdp_mline_index
        try:
            await self.pc.addIceCandidate(ice)
        except (ValueError, InvalidStateError) as exc:
            raise UserError("bad_candidate", f"cannot use ICE candidate: {exc}") from None

    async def close_media(self, keep_state: bool = False) -> None:
        pc, self.pc = self.pc, None
        for upstream in self.upstreams:
            upstream.close()
        downs = [d for _, d in self.downs]
        self.lesson.streams.forget(self.id, downs)
        for link in downs:
            packets, octets = link.counters()
            self._retired_counters = (
                self._retired_counters[0] + packets,
                self._retired_counters[1] + octets,
            )
            link.close()
        self.upstreams = []
        self.downs = []
        if not keep_state:
            self._set_media_state("none")
        if pc is not None:
            await asyncio.shield(pc.close())
            self.lesson.changed()

    def forwarded(self) -> tuple[int, int]:
        """(packets, bytes) forwarded to this peer so far, across its connections."""
        packets, octets = self._retired_counters
        for _, link in self.downs:
            p, o = link.counters()
            packets += p
            octets += o
        return packets, octets

    def media_lost(self) -> None:
        """The media connection is dead: drop it; the page or client offers again."""
        self._set_media_state("failed")
        spawn(self.close_media(keep_state=True), f"{self!r} closing dead media")

    def _set_media_state(self, state: str) -> None:
        if state != self.media_state:
            self.media_state = state
            logger.info("%r media %s", self, state)
            self.lesson.changed()


def _offer_kinds(sdp: str) -> list[str]:
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises many kinds on bad input
        raise UserError("bad_sdp", f"the offer is not valid SDP: {exc}") from None
    kinds = [media.kind for media in description.media]
    if not kinds:
        raise UserError("bad_sdp", "the offer has no audio or video")
    if any(kind not in ("audio", "video") for kind in kinds):
        raise UserError("bad_sdp", "the offer may only carry audio and video")
    return kinds
