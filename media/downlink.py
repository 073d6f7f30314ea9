"""One subscriber's video stream: the ladder layer its own line can carry.

Audio is not here: it is forwarded as is and never paused. This class joins a
`LayerSelector` (which layer), a `LayerController` (which layer should it be) and
the subscriber's RTCP (what the line says), and reports what it sees.

A subscriber may receive several video streams (the courseware, the teacher's
camera, the classroom on stage). They share one connection, so each stream's
estimate is what the line carries less a `reserve` for what ranks before it (audio,
then higher-priority video), and congestion is judged on `total_sent`, the rate of
the whole connection. A downlink can follow another publisher's ladder, or none,
when what it shows changes (`retarget`).
"""

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCRtpSender

from media import adapter
from media.estimator import LayerController
from media.fastsender import FastSender
from media.ladder import Ladder
from media.paddingprobe import PAD_RAMP
from media.selector import LayerSelector
from media.track import ForwardTrack

logger = logging.getLogger(__name__)

CAPS = ("auto", "high", "low", "audio")
SMALL_HEIGHT = 240  # a top layer this small is forwarded even when capped low


@dataclass(frozen=True)
class LinkStats:
    layer: str | None  # a layer name, or None when video is paused
    width: int | None
    height: int | None
    estimate_bps: int | None
    remb_bps: int | None
    sent_bps: int
    loss: float
    rtt_ms: int | None
    quality: str  # good, fair, poor, audio_only, or connecting before the first frame
    cap: str
    switches: int


class VideoDownlink:
    def __init__(
        self,
        ladder: Ladder | None,
        *,
        cap: str = "auto",
        initial: int | None = 0,
        queue_frames: int = 30,
        reserve: Callable[[], float] = lambda: 40_000.0,
        total_sent: Callable[[tuple[int, ...]], float] | None = None,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
        fast_codec: str | None = None,
    ) -> None:
        """With `fast_codec`, frames go out through a `FastSender` for that codec
        instead of aiortc's sender path."""
        self.name = name
        self.ladder = ladder
        self._clock = clock
        self._on_change = on_change
        self._total_sent = total_sent
        track = FastSender("video", fast_codec) if fast_codec else None
        self.selector = LayerSelector(
            ladder.layers if ladder else [], queue_frames, self._switched, track=track
        )
        self.cap_name = "auto"
        self.controller = LayerController(self._rates, initial=initial, audio_bps=reserve)
        self.set_cap(cap, evaluate=False)
        self._clamp_to_cap()
        if ladder is not None:
            self.selector.select(self.controller.layer)
        self.sender: RTCRtpSender | None = None
        self.feedback: adapter.SenderFeedback | None = None
        self._sent: deque[tuple[float, int]] = deque()
        self._last_highest = -1  # the highest sequence number the last report gave
        self.last_reason = "start"

    @property
    def track(self) -> ForwardTrack:
        return self.selector.track

    def _rates(self) -> list[float]:
        if self.ladder is None:
            return [0.0]
        return [self.ladder.rate(i) for i in range(len(self.ladder.layers))]

    def _clamp_to_cap(self) -> None:
        controller = self.controller
        if controller.cap is None:
            controller.layer = None
        elif controller.layer is not None and controller.layer < controller.cap:
            controller.layer = controller.cap

    def bind(self, sender: RTCRtpSender) -> None:
        """Hook the sender carrying the track: PLI/FIR to the current layer, RTCP in."""
        self.sender = sender
        if isinstance(self.selector.track, FastSender):
            self.selector.track.bind(sender)
        adapter.on_keyframe_request(sender, self.selector.request_keyframe)
        self.feedback = adapter.tap_rtcp(sender, self._on_report, self._on_nack, self._on_remb)
        if isinstance(self.selector.track, FastSender):
            self.feedback.retransmittable = self.selector.track.retransmittable

    def retarget(self, ladder: Ladder | None) -> None:
        """Show another publisher's stream (or nothing), keeping this subscriber's
        timeline and its link estimate."""
        if ladder is self.ladder:
            return
        self.ladder = ladder
        if ladder is None:
            self.selector.set_layers([], None)
            return
        lowest = len(ladder.layers) - 1
        layer = self.controller.layer
        start = None if layer is None else min(layer, lowest)
        self.selector.set_layers(ladder.layers, start)
        self._switched(None, start)

    def set_cap(self, cap: str, evaluate: bool = True) -> None:
        """The classroom's choice: auto, high (the teacher's own stream at best),
        low (the lowest layer at best) or audio (no video)."""
        if cap not in CAPS:
            raise ValueError(f"unknown quality {cap!r}; use one of {', '.join(CAPS)}")
        self.cap_name = cap
        lowest = len(self.ladder.layers) - 1 if self.ladder else 0
        if cap == "low" and self.ladder is not None:
            size = self.ladder.top.size
            if size is not None and size[1] <= SMALL_HEIGHT:
                lowest = 0  # already small: forward it as is
        self.controller.cap = {"auto": 0, "high": 0, "low": lowest, "audio": None}[cap]
        if evaluate:
            self.evaluate()

    def _on_report(self, feedback: adapter.SenderFeedback) -> None:
        now = self._clock()
        track = self.selector.track
        delay, slack = None, 0.0
        highest = feedback.highest_sequence
        if isinstance(track, FastSender) and highest != self._last_highest:
            # only a report that acknowledges a new packet says how long it took: one
            # that repeats the last (video paused) would show the pause as a queue
            sent_at = track.sent_at(highest & 0xFFFF)
            after = track.sent_at((highest + 1) & 0xFFFF)
            # the newest packet sent: the receiver has everything, and the report's
            # wait for the next frame would read as a queue
            if sent_at is not None and after is not None and after >= sent_at:
                delay, slack = time.monotonic() - sent_at, after - sent_at
        self._last_highest = highest
        self.controller.report(
            now, feedback.highest_sequence, feedback.packets_lost, feedback.rtt, delay, slack
        )
        self.evaluate()

    def _on_nack(self, feedback: adapter.SenderFeedback) -> None:
        if self.sender is None:
            return
        sent = adapter.sender_counters(self.sender)[0]
        if self.controller.nacked(self._clock(), sent, feedback.newly_nacked):
            self.evaluate()  # now, not at the next receiver report

    def _on_remb(self, feedback: adapter.SenderFeedback) -> None:
        if self.controller.padding_bps:
            self.evaluate()  # a padding probe stops on a falling REMB at once

    def _sent_bps(self, now: float) -> float:
        if self.sender is None:
            return 0.0
        _packets, octets = adapter.sender_counters(self.sender)
        samples = self._sent
        samples.append((now, octets))
        while len(samples) > 2 and samples[1][0] <= now - 2.0:
            samples.popleft()
        elapsed = now - samples[0][0]
        return (octets - samples[0][1]) * 8 / elapsed if elapsed > 0.2 else 0.0

    @property
    def sent_bps(self) -> float:
        """What this stream sent lately (bits per second)."""
        return self.controller.sent_bps

    def evaluate(self) -> None:
        """Decide again (on each receiver report, and on the lesson's periodic tick)."""
        if self.ladder is None:
            return
        if self.cap_name == "low":
            self.set_cap("low", evaluate=False)  # the top may have become small, or not
        now = self._clock()
        feedback = self.feedback
        remb = feedback.remb_bps if feedback is not None else None
        covered = feedback.remb_ssrcs if feedback is not None else ()
        # A browser's REMB covers every stream it receives; an aiortc receiver's only
        # its own stream (and that stream's RTX).
        own = {self.ssrc, self.rtx_ssrc}
        shared = any(ssrc not in own for ssrc in covered)
        total = None
        if shared and self._total_sent is not None:
            total = self._total_sent(covered)
        track = self.selector.track
        fast = track if isinstance(track, FastSender) else None
        self.controller.can_pad = fast is not None and fast.can_pad
        padding = self.controller.padding_bps
        decision = self.controller.update(now, remb, self._sent_bps(now), total, shared)
        if fast is not None and self.controller.padding_bps != padding:
            fast.pad(self.controller.padding_bps, PAD_RAMP)
            if padding == 0 and self.sender is not None and feedback is not None:
                self.controller.start_counting(
                    adapter.sender_counters(self.sender)[0], feedback.newly_nacked
                )
            logger.info(
                "%s padding %.0f bps: %s",
                self.name,
                self.controller.padding_bps,
                self.controller.padding_note,
            )
        if decision is None:
            return
        self.last_reason = decision.reason
        names = self.ladder.names
        logger.info(
            "%s layer %s -> %s: %s (remb %s, sent %d, loss %.1f%%, queue %.0f ms)",
            self.name,
            names[self.selector.target] if self.selector.target is not None else "audio",
            names[decision.layer] if decision.layer is not None else "audio",
            decision.reason,
            remb,
            self.controller.sent_bps,
            self.controller.loss * 100,
            self.controller.queue * 1000,
        )
        self.selector.select(decision.layer)

    def _switched(self, previous: int | None, current: int | None) -> None:
        if self._on_change is not None:
            self._on_change()

    @property
    def paused(self) -> bool:
        """Video is off: the line cannot carry even the lowest layer, or audio only
        was chosen."""
        return self.controller.layer is None

    def stats(self) -> LinkStats:
        layer = self.selector.current
        ladder = self.ladder
        size = ladder.layer_size(layer) if ladder is not None and layer is not None else None
        rtt = adapter.sender_rtt(self.sender) if self.sender is not None else None
        controller = self.controller
        lowest = len(ladder.layers) - 1 if ladder is not None else 0
        if self.paused:
            quality = "audio_only"
        elif layer is None:
            quality = "connecting"
        elif controller.loss > 0.10 or (layer == lowest and layer > 0):
            quality = "poor"
        elif controller.loss > 0.02 or layer > 0:
            quality = "fair"
        else:
            quality = "good"
        estimate = controller.estimate
        return LinkStats(
            layer=ladder.names[layer] if ladder is not None and layer is not None else None,
            width=size[0] if size else None,
            height=size[1] if size else None,
            estimate_bps=int(estimate) if estimate is not None else None,
            remb_bps=int(controller.remb) if controller.remb is not None else None,
            sent_bps=int(controller.sent_bps),
            loss=round(controller.loss, 4),
            rtt_ms=round(rtt * 1000) if rtt is not None else None,
            quality=quality,
            cap=self.cap_name,
            switches=self.selector.switches,
        )

    @property
    def ssrc(self) -> int | None:
        return self.sender._ssrc if self.sender is not None else None

    @property
    def rtx_ssrc(self) -> int | None:
        return self.sender._rtx_ssrc if self.sender is not None else None

    def counters(self) -> tuple[int, int]:
        if self.sender is None:
            return 0, 0
        return adapter.sender_counters(self.sender)

    def close(self) -> None:
        self.selector.close()
