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

from media.downlink import VideoDownlink
from media.peer import create_peer_connection, prefer_codec
from media.subscription import Subscription
from media.upstream import Upstream
from server.errors import UserError
from server.protocol import Candidate
from server.tokens import Grant

if TYPE_CHECKING:
    from server.lesson import Lesson

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 256
PUBLISHERS = ("teacher",)


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
        self.subscriptions: list[Subscription] = []
        self.downlinks: list[VideoDownlink] = []
        self.cap = "auto"
        self._retired_counters = (0, 0)
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

    async def negotiate(self, sdp: str, ice_servers: list[RTCIceServer], codec: str) -> str:
        """Answer an offer with a new media connection, replacing any previous one."""
        kinds = _offer_kinds(sdp)
        publishing = self.role in PUBLISHERS
        _check_offer(kinds, publishing)
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
            if publishing:
                for kind in kinds:
                    transceiver = pc.addTransceiver(kind, direction="recvonly")
                    if kind == "video":
                        prefer_codec(transceiver, codec)
            else:
                for kind in kinds:
                    if kind == "video":
                        self._add_video_downlink(pc, codec)
                    else:
                        subscription = Subscription(self.lesson.source_for(kind))
                        self.subscriptions.append(subscription)
                        transceiver = pc.addTransceiver(subscription.track, direction="sendonly")
                        subscription.bind(transceiver.sender)
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
            if publishing:
                for transceiver in pc.getTransceivers():
                    if transceiver.receiver.track is not None:
                        source = self.lesson.source_for(transceiver.kind)
                        self.upstreams.append(Upstream(transceiver.receiver, source))
                if self.upstreams:
                    self.lesson.publishing_started()
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            await self.close_media()
            raise
        self.lesson.changed()
        return pc.localDescription.sdp

    def _add_video_downlink(self, pc: RTCPeerConnection, codec: str) -> None:
        audio = self.lesson.source_for("audio")
        downlink = VideoDownlink(
            self.lesson.ladder(),
            cap=self.cap,
            audio_bps=lambda: max(audio.rate.bps(), 32_000.0),
            on_change=self.lesson.changed,
            name=repr(self),
        )
        self.downlinks.append(downlink)
        transceiver = pc.addTransceiver(downlink.track, direction="sendonly")
        prefer_codec(transceiver, codec)
        downlink.bind(transceiver.sender)

    def set_cap(self, cap: str) -> None:
        """The classroom's quality choice: auto, high, low or audio."""
        self.cap = cap
        for downlink in self.downlinks:
            downlink.set_cap(cap)
        self.lesson.changed()

    def evaluate_links(self) -> None:
        for downlink in self.downlinks:
            downlink.evaluate()

    def link_stats(self) -> dict[str, Any]:
        if not self.downlinks:
            return {"quality": None, "cap": self.cap}
        stats = self.downlinks[0].stats()
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
        if not self.downlinks:
            return {"layer": None, "paused": False, "reason": None, "cap": self.cap}
        downlink = self.downlinks[0]
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
            await self.pc.addIceCandidate(None)
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
        links: list[Subscription | VideoDownlink] = [*self.subscriptions, *self.downlinks]
        for link in links:
            packets, octets = link.counters()
            self._retired_counters = (
                self._retired_counters[0] + packets,
                self._retired_counters[1] + octets,
            )
            link.close()
        self.upstreams = []
        self.subscriptions = []
        self.downlinks = []
        if not keep_state:
            self._set_media_state("none")
        if pc is not None:
            await asyncio.shield(pc.close())
            self.lesson.changed()

    def forwarded(self) -> tuple[int, int]:
        """(packets, bytes) forwarded to this peer so far, across its connections."""
        packets, octets = self._retired_counters
        links: list[Subscription | VideoDownlink] = [*self.subscriptions, *self.downlinks]
        for link in links:
            p, o = link.counters()
            packets += p
            octets += o
        return packets, octets

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
    return [media.kind for media in description.media]


def _check_offer(kinds: list[str], publishing: bool) -> None:
    media = [k for k in kinds if k in ("audio", "video")]
    if len(media) != len(kinds):
        raise UserError("bad_sdp", "the offer may only carry audio and video")
    if not media:
        raise UserError("bad_sdp", "the offer has no audio or video")
    if media.count("audio") > 1 or media.count("video") > 1:
        raise UserError("bad_sdp", "the offer may carry at most one audio and one video")
