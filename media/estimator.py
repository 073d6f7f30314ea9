"""Per-subscriber link estimate and layer choice, from what aiortc gives a sender.

Inputs are the subscriber's REMB, its receiver reports, their NACKs and the rate
actually sent. The line is judged congested on any of:
- loss above 10% over the last few reports (`media/losswindow.py`);
- a queue (`media/queuemeter.py`): 150 ms above the least seen lately over three
  reports, or 80 ms over two (a rural line's shaper holds up to 300 ms of packets
  before it drops). The top layer climbing through a 1 Mbit/s line showed +96,
  +97, +270 ms, then loss;
- heavy loss seen in NACKs, on the top layer only: a fifth of the packets sent
  over the last 0.15-1 s newly NACKed. That shows a round trip after the loss
  begins, where receiver reports come about a second apart and smooth loss over
  two: a step from 2.5 Mbit/s to 600 kbit/s kept the top layer 2.1 s on reports.
  The top is the layer whose rate nobody chose (the teacher's own), and a line
  that suddenly loses a fifth of it has fallen by an unknown amount: it goes to
  the lowest layer, never to audio only on NACKs alone, and padding probes bring
  it back up (stepping one layer on NACKs froze a 300 kbit/s line on 360p:
  docs/benchmarks.md). Not in a stream's first seconds, whose NACKs are mostly for
  the join's burst;
- REMB well under what is sent (`media/rembwatch.py`).

The choice goes down fast: on congestion, straight to the best layer that fits the
estimate (the lower of REMB and a loss-based figure), or to audio only when none
does. Right after a switch down the windows start afresh, and for a moment only
severe trouble moves it further, so one burst of loss from the old layer cannot
cascade down to audio only. It goes up slowly: after a quiet hold, one layer at a
time, as a probe. A probe that meets congestion within `probe_window` is undone and
doubles the hold (up to `max_hold`); a probe that holds resets it.

Congestion also leaves a ceiling (`media/ceiling.py`) that a probe must not exceed
until it has grown. Video coming back from audio only to the lowest layer is not
held back by it.

A probe pads first where the sender can (`can_pad`, RTX negotiated): see
`media/paddingprobe.py`. The layer moves up only if the padding stayed clean; when
something stops it, the layer stays and the probe counts as failed.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from media.ceiling import Ceiling
from media.losswindow import LossWindow
from media.nackshare import NackShare
from media.paddingprobe import PaddingProbe
from media.queuemeter import QueueMeter
from media.rembwatch import RembWatch

PAUSE_MARGIN = 0.7  # pause at once when the estimate is below 70% of the lowest layer
PAUSE_AFTER = 4.0  # or when congestion at the lowest layer lasts this long (seconds)
START_GRACE = 5.0  # seconds before an estimate alone pauses a new stream or NACKs count
QUEUE_DELAY = 0.15  # seconds of round trip above the least: the line queues
SETTLE = 2.5  # seconds after a switch down when only severe trouble goes further
QUEUE_BUILDING = 0.08  # seconds of queue over the last two reports: the line is filling
PROBE_HEADROOM = 1.2  # probe up only while REMB is this far above what is sent
CONGESTED_HOLD = 10.0  # seconds before the first probe after congestion
HEAVY_LOSS = 0.25  # above this, what got through measures the line, counted as at
LEAST_THROUGH = 0.1  # least this share of what was sent (a join's burst can be NACKed whole)
NACK_HEAVY = 0.2  # share of the packets sent that were newly NACKed: heavy loss


@dataclass
class Decision:
    layer: int | None  # 0 is the top layer; None pauses video
    reason: str


class LayerController:
    def __init__(
        self,
        rates: Callable[[], Sequence[float]],
        *,
        initial: int | None,
        cap: int | None = 0,
        audio_bps: Callable[[], float] = lambda: 40_000.0,
        loss_window: float = 2.0,
        base_hold: float = 4.0,
        max_hold: float = 64.0,
        probe_window: float = 8.0,
        congestion_loss: float = 0.10,
    ) -> None:
        self._rates = rates
        self._audio_bps = audio_bps
        self.layer: int | None = initial
        self.cap = cap  # the highest layer allowed (lower index = higher); None: audio only
        self._base_hold = base_hold
        self._max_hold = max_hold
        self._hold = base_hold
        self._probe_window = probe_window
        self._congestion_loss = congestion_loss
        # The first hold starts at the first update: a subscriber that starts below
        # the top (its line check said so, or it came back to its seat) stays there a
        # while before probing.
        self._hold_until: float | None = None
        self._started_at = 0.0
        self._probe_at: float | None = None
        self._remb = RembWatch()
        self._losses = LossWindow(loss_window)
        self._queue = QueueMeter()
        self._congested_since: float | None = None
        self._ceiling = Ceiling()
        self._settle_until = 0.0
        self._resumed_probe = False  # the last move resumed video from a pause
        self._probe_failed = False  # the last congestion came within a probe's window
        # the highest sequence number reported when video resumed from a pause
        self._resumed_at_sequence: int | None = None
        self.estimate: float | None = None
        self.remb: float | None = None
        self.sent_bps = 0.0
        self.congested = False
        self.why = ""
        self.can_pad = False  # the sender can pad (set by its owner)
        self._pad = PaddingProbe()
        self._nacks = NackShare()
        self.nack_heavy = False

    @property
    def loss(self) -> float:
        """The share of packets lost over the last few receiver reports."""
        return self._losses.loss

    @property
    def padding_bps(self) -> float:
        """Padding wanted (at the top of its ramp), on top of the layer."""
        return self._pad.bps

    @property
    def padding_note(self) -> str:
        """Why padding started or stopped, for the log."""
        return self._pad.note

    @property
    def queue(self) -> float:
        """Seconds of queue the last few reports agree on (the least of them)."""
        return self._queue.lasting

    @property
    def queue_building(self) -> float:
        return self._queue.building

    @property
    def queue_now(self) -> float:
        return self._queue.latest

    @property
    def nack_loss(self) -> float:
        """The share of the packets sent lately that were NACKed."""
        return self._nacks.share

    # -- inputs --------------------------------------------------------------

    def report(
        self,
        now: float,
        highest_sequence: int,
        packets_lost: int,
        rtt: float | None = None,
        delay: float | None = None,
        slack: float = 0.0,
    ) -> None:
        """A receiver report: cumulative loss, the highest sequence number, its round
        trip if it gave one, and its newest packet's `delay` and `slack` (seconds;
        `media/queuemeter.py` says what they are)."""
        if now < self._settle_until:
            self._losses.clear()  # right after a switch down: count from when it settled
        resumed_at = self._resumed_at_sequence
        if resumed_at is not None and highest_sequence > resumed_at:
            # The first report since video resumed that shows new packets also shows,
            # as lost, the tail of what a full line dropped before video paused (only
            # a later packet reveals a gap): count from this report on. That loss
            # paused video again at once, with the line back at 2.5 Mbit/s.
            self._losses.clear()
            self._resumed_at_sequence = None
        self._losses.add(now, highest_sequence, packets_lost)
        self._queue.add(now, delay, rtt, slack)

    def _fresh_windows(self) -> None:
        """After a switch the old layer's losses and queue say nothing about the new."""
        self._losses.restart()
        self._nacks.restart()
        self._remb.restart()
        self._congested_since = None

    # -- the decision ----------------------------------------------------------

    def update(
        self,
        now: float,
        remb: float | None,
        sent_bps: float,
        total_sent_bps: float | None = None,
        shared: bool = True,
    ) -> Decision | None:
        """Evaluate; returns a Decision when the layer should change.

        `sent_bps` is this stream's rate; `total_sent_bps` what the whole connection
        to this subscriber carries (a browser's REMB covers all of it; defaults to
        this stream). The reserve (`audio_bps`) is what goes before this stream:
        audio, and video of higher priority. With `shared` False, REMB is this
        stream's alone (an aiortc receiver estimates each stream on its own), and no
        reserve applies."""
        if self._hold_until is None:
            self._hold_until = now + self._base_hold
            self._started_at = now
        self.remb = remb
        self.sent_bps = sent_bps
        total = sent_bps if total_sent_bps is None else max(total_sent_bps, sent_bps)
        rates = list(self._rates())
        lowest = len(rates) - 1
        audio = self._audio_bps() if shared else 0.0
        lossy = self.loss > self._congestion_loss
        loss_based = None
        if lossy:
            # GCC's cut for moderate loss; under heavy loss, what got through is the
            # line's measure (a slow line flooded by the top layer loses most of it).
            share = 1 - self.loss if self.loss > HEAVY_LOSS else 1 - 0.5 * self.loss
            share = max(LEAST_THROUGH, share)
            loss_based = (total + self._pad.rate_at(now)) * share
        candidates = [x for x in (remb, loss_based) if x is not None]
        if self._nacks_count(now):
            # what got through, by the NACKs: it also leaves the ceiling, so that a
            # 300 kbit/s line is not padded for 360p ten seconds later (that froze
            # its 180p for 1.3 s in a rural test). Right after the start the rate
            # sent is not measured yet: the top layer's own rate stands for it.
            candidates.append((total or rates[0]) * max(LEAST_THROUGH, 1 - self.nack_loss))
        self.estimate = min(candidates) if candidates else None

        self.congested, self.why = self._judge(now, remb, sent_bps, total, shared, lossy)

        if self._pad.target is not None:
            handled, decision = self._padded(now, rates, total, audio)
            if handled:
                return decision
        if self.cap is None:
            return self._move(None, now, "audio only was chosen")
        if self.layer is not None and self.layer < self.cap:
            return self._move(self.cap, now, "capped by the classroom's choice")

        if self.congested:
            if self._line_shows():
                # a REMB alone measures nothing: a browser's starts low and ramps
                # (Chromium's read 233 kbit/s 4 s into a 1 Mbit/s line), and a ceiling
                # from it held 180p there for a minute
                self._lower_ceiling(now, total)
            self._probe_failed = (
                self._probe_at is not None and now - self._probe_at < self._probe_window
            )
            if self._probe_failed:
                self._hold = min(self._hold * 2, self._max_hold)
            else:
                # the line itself got worse: give it a while before trying again
                self._hold = max(self._hold, CONGESTED_HOLD)
            self._probe_at = None
            self._hold_until = now + self._hold
            if self.layer is None:
                return None
            if now < self._settle_until and not self._severe(rates):
                return None
            return self._step_down(now, rates, lowest, audio)

        if self._probe_at is not None and now - self._probe_at >= self._probe_window:
            self._probe_at = None
            self._hold = self._base_hold  # the last probe held
        if now < self._hold_until:
            return None
        if self.layer is None:
            return self._probe(lowest, now)
        if self.layer > self.cap:
            # REMB climbs to about 1.5 times what arrives while nothing queues, and
            # sits under it when the line is full: then a probe would only hurt.
            if remb is not None and total > 0 and remb < PROBE_HEADROOM * total:
                self._hold_until = now + self._base_hold
                return None
            ceiling = self.ceiling(now)
            if remb is not None and ceiling is not None and remb > ceiling:
                self._ceiling.lift(now, remb)
                ceiling = remb
            target = self.layer - 1
            if ceiling is not None and rates[target] + audio > ceiling:
                self._hold_until = now + self._base_hold
                return None
            if self.can_pad:
                self._pad.start(target, now, rates[target], total, self.remb)
                return None
            return self._probe(target, now)
        return None

    # -- padding probes ----------------------------------------------------------

    def nacked(self, now: float, packets_sent: int, nacked: int) -> bool:
        """NACKs came: running totals of the packets sent and of the packets NACKed
        (each once). True when that should be acted on now (heavy loss on the top
        layer, or a padding probe to stop)."""
        self._nacks.add(now, packets_sent, nacked)
        if self._pad.target is None:
            return self._nacks_count(now)
        return self._pad.nacked(self._nacks, now, packets_sent, nacked)

    def _nacks_count(self, now: float) -> bool:
        """Heavy loss in NACKs on the top layer, past the stream's first seconds."""
        return (
            self.layer == 0
            and self.nack_loss > NACK_HEAVY
            and now - self._started_at >= START_GRACE
        )

    def start_counting(self, packets_sent: int, nacked: int) -> None:
        """The running totals when a padding probe begins."""
        self._pad.start_counting(packets_sent, nacked)

    def _padded(
        self, now: float, rates: list[float], total: float, audio: float
    ) -> tuple[bool, Decision | None]:
        """A padding probe under way: whether it decided, and what."""
        pad = self._pad
        target = pad.target
        assert target is not None
        if self.cap is None or self.layer is None or target < self.cap:
            pad.stop("the classroom's choice changed")
            return False, None
        queued = pad.queued(self.queue_now)
        fell = pad.remb_fell(self.remb, total, now)
        if self.congested or pad.overflow or queued or fell:
            why = (
                self.why
                if self.congested
                else "NACKs"
                if pad.overflow
                else f"queue {self.queue_now * 1000:.0f} ms"
                if queued
                else f"REMB fell to {self.remb or 0:.0f} bps"
            )
            self._lower_ceiling(now, total + pad.rate_at(now))
            pad.stop(f"padding for {rates[target]:.0f} bps met congestion ({why})")
            self._hold = min(self._hold * 2, self._max_hold)
            self._hold_until = now + self._hold
            # the padding's loss and queue are not the layer's: count afresh, and step
            # down only if the line fell far below the layer meanwhile
            severe = self._severe(rates)
            self._settle_until = now + SETTLE
            self._fresh_windows()
            if severe:
                return True, self._step_down(now, rates, len(rates) - 1, audio)
            return True, None
        if not pad.held(now):
            return True, None
        pad.stop("the line carried the padding")
        return True, self._probe(target, now)

    def ceiling(self, now: float) -> float | None:
        return self._ceiling.at(now)

    def _lower_ceiling(self, now: float, total: float) -> None:
        """Congestion measured the line: the estimate (REMB, or what got through), or,
        with a queue and no estimate, what was being sent."""
        measured = self.estimate
        if measured is None:
            if not self._queued() or total <= 0:
                return
            measured = total
        self._ceiling.lower(now, measured)

    def _line_shows(self) -> bool:
        """The line itself shows trouble (loss, NACKs, a queue), not an estimate alone."""
        return (
            self.loss > 0.02
            or self.queue_building > QUEUE_DELAY / 3
            or self.nack_heavy
            or self.nack_loss > NACK_HEAVY
        )

    def _queued(self) -> bool:
        return self.queue > QUEUE_DELAY or self.queue_building > QUEUE_BUILDING

    def _judge(
        self,
        now: float,
        remb: float | None,
        sent: float,
        total: float,
        shared: bool,
        lossy: bool,
    ) -> tuple[bool, str]:
        queued = self._queued()
        remb_congested = self._remb.congested(
            now,
            remb if self.layer is not None else None,
            sent,
            total,
            shared,
            self.loss,
            self.queue,
        )
        # on the top layer only (see the module's note); not while a switch settles,
        # nor in a stream's first seconds: the join's burst (up to 96 KB at once)
        # overflows a 1 Mbit/s line's queue, and its NACKs held 180p for a minute
        self.nack_heavy = (
            self._nacks_count(now)
            and now >= self._settle_until
            and not (lossy or queued or remb_congested)
        )
        congested = lossy or queued or remb_congested or self.nack_heavy
        if not congested:
            self._congested_since = None
        elif self._congested_since is None:
            self._congested_since = now
        why = (
            f"loss {self.loss:.0%}"
            if lossy
            else f"queue {max(self.queue, self.queue_building) * 1000:.0f} ms"
            if queued
            else f"NACKs for {self.nack_loss:.0%} of the packets"
            if self.nack_heavy
            else f"REMB {remb or 0:.0f} under {total:.0f} bps"
        )
        return congested, why

    def _severe(self, rates: list[float]) -> bool:
        """Right after a switch down, the loss and the queue still come from the old
        layer (a full shaper drops its tail for a while): only an estimate far below
        the new layer moves on."""
        current = rates[self.layer] if self.layer is not None else 0.0
        return self.estimate is not None and self.estimate < 0.5 * current

    def _step_down(
        self, now: float, rates: list[float], lowest: int, audio: float
    ) -> Decision | None:
        assert self.layer is not None and self.cap is not None
        if self.nack_heavy:  # to the lowest layer, never to audio only (module's note)
            return self._move(max(lowest, self.cap), now, f"congested ({self.why})")
        fitting = [
            i
            for i in range(max(self.layer + 1, self.cap), lowest + 1)
            if self.estimate is None or rates[i] + audio <= self.estimate
        ]
        if self.estimate is None:
            target: int | None = min(self.layer + 1, lowest + 1)
        else:
            target = fitting[0] if fitting else lowest + 1
        if target is not None and target > lowest:
            # Video stops only when the line clearly cannot carry the lowest layer:
            # heavy loss, an estimate well below it, or congestion that lasts.
            need = rates[lowest] + audio
            # A lossy lowest layer still plays (the client asks again for what it
            # lost): what stops video is an estimate far below it, or heavy loss or a
            # queue that lasts.
            lasting = (
                self._congested_since is not None and now - self._congested_since >= PAUSE_AFTER
            )
            # In a stream's first seconds the loss is mostly the join's burst (the
            # replayed keyframe and what followed it, up to 96 KB), not the line: a
            # 300 kbit/s line lost 80 % of it and paused video for 10 s at once.
            measured = now - self._started_at >= START_GRACE
            estimate = self.estimate
            # An estimate alone (REMB) with no loss and no queue does not stop video:
            # a busy classroom PC reads its own scheduling delays as a queue, and
            # Chromium's REMB then sits at 75 kbit/s on a loopback line.
            far_below = (
                estimate is not None
                and estimate < PAUSE_MARGIN * need
                and measured
                and self._line_shows()
            )
            clear = far_below or (
                lasting and (self.loss > 2 * self._congestion_loss or self.queue > QUEUE_DELAY)
            )
            target = None if clear else lowest
        return self._move(target, now, f"congested ({self.why})")

    def _probe(self, target: int, now: float) -> Decision | None:
        self._probe_at = now
        self._hold_until = now + self._base_hold
        return self._move(target, now, "probing a higher layer")

    def _move(self, target: int | None, now: float, reason: str) -> Decision | None:
        if target == self.layer:
            return None
        going_up = target is not None and (self.layer is None or target < self.layer)
        resuming = self.layer is None and target is not None
        if target is None and self.layer is not None and self.cap is not None:
            # Pausing. Video comes back after the hold that congestion sets, not after
            # one doubled by failed probes between layers earlier (in a full-suite run
            # it came back 12 s after the line recovered); only a failed resume doubles.
            if not (self._resumed_probe and self._probe_failed):
                self._hold = CONGESTED_HOLD
                self._hold_until = now + CONGESTED_HOLD
        self._resumed_probe = resuming
        self.layer = target
        if going_up:
            self._remb.switched_up(self.remb)
            if resuming:
                # the loss counted before video paused (the last of a full line's
                # queue) says nothing of the line now: it paused video again at once
                self._fresh_windows()
                self._resumed_at_sequence = self._losses.highest
        else:
            self._remb.switched_down()
            self._settle_until = now + SETTLE
            self._fresh_windows()
        return Decision(target, reason)
