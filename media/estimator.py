"""Per-subscriber link estimate and layer choice, from what aiortc gives a sender.

Inputs are the subscriber's REMB, its receiver reports (cumulative loss and highest
sequence number, smoothed over a window because one report's fraction-lost is
noisy), the round-trip time they give, and the rate actually sent. The line is
judged congested on any of:
- loss above 10% over the window (with enough packets to say so);
- a queue (`media/queuemeter.py`): 150 ms above the least seen lately over three
  reports, or 80 ms over two (a rural line's shaper holds up to 300 ms of packets
  before it drops). The top layer climbing through a 1 Mbit/s line showed +96,
  +97, +270 ms, then loss;
- heavy loss seen in NACKs, on the top layer only: a fifth of the packets sent
  over the last 0.3-1 s newly NACKed. That shows a round trip after the loss
  begins, where receiver reports come about a second apart and smooth loss over
  two: a step from 2.5 Mbit/s to 600 kbit/s kept the top layer 2.1 s on reports.
  The top is the layer whose rate nobody chose (the teacher's own), and a line
  that suddenly loses a fifth of it has fallen by an unknown amount: it goes to
  the lowest layer, never to audio only on NACKs alone, and padding probes bring
  it back up. (Stepping one layer on NACKs was tried: a 300 kbit/s line went to
  360p, where the reports would have gone to 180p, and froze 1.5 s.) Not in a
  stream's first seconds, whose NACKs are mostly for the join's burst;
- REMB well under what is sent. A browser's REMB covers its whole connection and
  is a good signal when it lasts. An aiortc receiver estimates each stream alone,
  ramps slowly and reads a busy CPU as a queue, so its REMB only counts when it is
  deep and loss or a queue agrees.

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

A probe pads first where the sender can (`can_pad`, RTX negotiated): the
subscriber gets padding on top of its layer, rising over `PAD_RAMP` seconds to the
next layer's rate and held there to `PAD_PROBE`, and moves up only if the line
stayed clean. Congestion, a queue on any one report (the round trip, or the delay
of the latest packet the report acknowledges), NACKs for a tenth of the packets
sent over the last half second, or a REMB that falls (the receiver's own delay
detector saw the queue grow, and it says so at once, between two reports), stops
it at once: the padding goes, the layer stays, and the probe counts as failed.
Rising slowly, the padding fills a full line's queue over a second or two, so a
report shows the queue before the shaper drops. Switching straight up into a line
that cannot carry the next layer (360p at 450 kbit/s to a top of 1.3 Mbit/s on a 1
Mbit/s line) cost 1-1.6 s of frozen picture each time, the largest share of the
rural benchmark's freezes.

REMB lags a rate increase by seconds, so right after an up-switch a low REMB only
counts once REMB has caught up with the new rate, or falls clearly below where it
was at the switch.
"""

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from media.ceiling import Ceiling
from media.nackshare import NackShare
from media.queuemeter import QueueMeter

PAUSE_MARGIN = 0.7  # pause at once when the estimate is below 70% of the lowest layer
PAUSE_AFTER = 4.0  # or when congestion at the lowest layer lasts this long (seconds)
START_GRACE = 5.0  # seconds from a stream's start before an estimate alone pauses it,
# or NACKs count
REMB_PERSIST = 0.4  # a browser's low REMB counts once it lasts this long (seconds)...
REMB_DEEP = 0.6  # ...or at once when it is below this share of what is sent
REMB_ALONE_DEEP = 0.5  # a per-stream REMB must fall this low, with loss or a queue
QUEUE_DELAY = 0.15  # seconds of round trip above the least: the line queues
MIN_PACKETS = 20  # packets expected in the window before its loss means anything
SETTLE = 2.5  # seconds after a switch down when only severe trouble goes further
QUEUE_BUILDING = 0.08  # seconds of queue over the last two reports: the line is filling
PROBE_HEADROOM = 1.2  # probe up only while REMB is this far above what is sent
CONGESTED_HOLD = 10.0  # seconds before the first probe after congestion
HEAVY_LOSS = 0.25  # above this, what got through measures the line
# ...counted as at least this share of what was sent: a join's burst can be NACKed
# whole, and a ceiling of nothing would never grow
LEAST_THROUGH = 0.1
PAD_RAMP = 6.0  # seconds over which padding rises to the next layer's rate...
PAD_PROBE = 7.0  # ...and seconds of padding in all before moving up to it
PAD_QUEUE = 0.08  # a queue this long on one report stops padding
PAD_OVER = 1.1  # ...padding to this share above that layer's rate
PAD_NACK_SHARE = 0.1  # NACKs for this share of the packets sent since the padding began...
PAD_NACK_MIN = 5  # ...and at least this many stop it
PAD_NACK_WINDOW = 0.5  # ...counted over this many seconds at most
PAD_REMB_FALL = 0.9  # a REMB this far below its highest since the padding began stops it
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
        self._loss_window = loss_window
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
        self._remb_at_switch: float | None = None
        self._remb_caught_up = True
        self._reports: deque[tuple[float, int, int]] = deque()
        self._queue = QueueMeter()
        self._congested_since: float | None = None
        self._remb_low_since: float | None = None
        self._ceiling = Ceiling()
        self._settle_until = 0.0
        self._resumed_probe = False  # the last move resumed video from a pause
        self._probe_failed = False  # the last congestion came within a probe's window
        # the highest sequence number reported when video resumed from a pause
        self._resumed_at_sequence: int | None = None
        self.loss = 0.0
        self.estimate: float | None = None
        self.remb: float | None = None
        self.sent_bps = 0.0
        self.congested = False
        self.why = ""
        self.can_pad = False  # the sender can pad (set by its owner)
        self.padding_ramp = PAD_RAMP
        self.padding_bps = 0.0  # padding wanted now, on top of the layer
        self.padding_note = ""  # why padding started or stopped, for the log
        self._padding: int | None = None  # the layer a padding probe is for
        self._padding_since = 0.0
        self._pad_packets: tuple[int, int] | None = None  # (sent, NACKed) at its start
        self._pad_overflow = False
        self._pad_remb_peak: float | None = None  # the highest REMB since padding began
        self._nacks = NackShare()
        self.nack_heavy = False

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
        """A receiver report: cumulative loss, the highest sequence number, the
        round trip it gave (seconds), if it could, and `delay`, the time from sending
        the highest packet it acknowledges to the report's arrival, if known, with
        `slack`, the time from sending that packet to sending the next."""
        reports = self._reports
        if reports and highest_sequence < reports[-1][1]:
            reports.clear()  # sequence numbers restarted (a new sender)
        if now < self._settle_until:
            reports.clear()  # right after a switch down: count from when it has settled
        resumed_at = self._resumed_at_sequence
        if resumed_at is not None and highest_sequence > resumed_at:
            # The first report since video resumed that shows new packets also shows,
            # as lost, the tail of what a full line dropped before video paused (only
            # a later packet reveals a gap): count from this report on. That loss
            # paused video again at once, with the line back at 2.5 Mbit/s.
            reports.clear()
            self._resumed_at_sequence = None
        reports.append((now, highest_sequence, packets_lost))
        while len(reports) > 2 and reports[1][0] <= now - self._loss_window:
            reports.popleft()
        first, last = reports[0], reports[-1]
        expected = last[1] - first[1]
        lost = last[2] - first[2]
        if expected >= MIN_PACKETS:
            self.loss = min(1.0, max(0.0, lost / expected))
        elif len(reports) == 1:
            self.loss = 0.0
        self._queue.add(now, delay, rtt, slack)

    def _fresh_windows(self) -> None:
        """After a switch the old layer's losses and queue say nothing about the new."""
        if self._reports:
            self._reports = deque([self._reports[-1]])
        self._nacks.restart()
        self.loss = 0.0
        self._remb_low_since = None
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
            loss_based = (total + self._padding_now(now)) * share
        candidates = [x for x in (remb, loss_based) if x is not None]
        if self._nacks_count(now):
            # what got through, by the NACKs: it also leaves the ceiling, so that a
            # 300 kbit/s line is not padded for 360p ten seconds later (that froze
            # its 180p for 1.3 s in a rural test). Right after the start the rate
            # sent is not measured yet: the top layer's own rate stands for it.
            candidates.append((total or rates[0]) * max(LEAST_THROUGH, 1 - self.nack_loss))
        self.estimate = min(candidates) if candidates else None

        self.congested, self.why = self._judge(now, remb, sent_bps, total, shared, lossy)

        if self._padding is not None:
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
                return self._start_padding(target, now, rates, total)
            return self._probe(target, now)
        return None

    # -- padding probes ----------------------------------------------------------

    def nacked(self, now: float, packets_sent: int, nacked: int) -> bool:
        """NACKs came: running totals of the packets sent and of the packets NACKed
        (each once). True when that should be acted on now (heavy loss on the top
        layer, or a padding probe to stop)."""
        self._nacks.add(now, packets_sent, nacked)
        if self._padding is None:
            return self._nacks_count(now)
        if self._pad_packets is None:
            self._pad_packets = (packets_sent, nacked)
            return False
        # over the last PAD_NACK_WINDOW, or since the padding began if that is later:
        # counted from the start of a long probe, a line that fell 5 s in needed
        # 22 NACKed packets and stopped the padding only on the next report
        sent, asked = self._nacks.since(now, PAD_NACK_WINDOW, self._pad_packets)
        self._pad_overflow = asked >= max(PAD_NACK_MIN, PAD_NACK_SHARE * sent)
        return self._pad_overflow

    def _nacks_count(self, now: float) -> bool:
        """Heavy loss in NACKs on the top layer, past the stream's first seconds."""
        return (
            self.layer == 0
            and self.nack_loss > NACK_HEAVY
            and now - self._started_at >= START_GRACE
        )

    def start_counting(self, packets_sent: int, nacked: int) -> None:
        """The running totals when a padding probe begins."""
        if self._padding is not None:
            self._pad_packets = (packets_sent, nacked)

    def _start_padding(
        self, target: int, now: float, rates: list[float], total: float
    ) -> Decision | None:
        self._padding = target
        self._padding_since = now
        self._pad_packets = None
        self._pad_overflow = False
        self._pad_remb_peak = self.remb
        self.padding_bps = max(0.0, PAD_OVER * rates[target] - total)
        self.padding_note = f"probing for a layer of {rates[target]:.0f} bps"
        return None

    def _padding_now(self, now: float) -> float:
        """The padding rate at `now`, on its way up."""
        if self._padding is None:
            return 0.0
        return self.padding_bps * min(1.0, (now - self._padding_since) / PAD_RAMP)

    def _stop_padding(self) -> None:
        self._padding = None
        self.padding_bps = 0.0
        self._pad_overflow = False

    def _padded(
        self, now: float, rates: list[float], total: float, audio: float
    ) -> tuple[bool, Decision | None]:
        """A padding probe under way: whether it decided, and what."""
        target = self._padding
        assert target is not None
        if self.cap is None or self.layer is None or target < self.cap:
            self._stop_padding()
            self.padding_note = "the classroom's choice changed"
            return False, None
        queued = self.queue_now > PAD_QUEUE
        fell = self._remb_fell(now, total)
        if self.congested or self._pad_overflow or queued or fell:
            why = (
                self.why
                if self.congested
                else "NACKs"
                if self._pad_overflow
                else f"queue {self.queue_now * 1000:.0f} ms"
                if queued
                else f"REMB fell to {self.remb or 0:.0f} bps"
            )
            self._lower_ceiling(now, total + self._padding_now(now))
            self._stop_padding()
            self._hold = min(self._hold * 2, self._max_hold)
            self._hold_until = now + self._hold
            self.padding_note = f"padding for {rates[target]:.0f} bps met congestion ({why})"
            # the padding's loss and queue are not the layer's: count afresh, and step
            # down only if the line fell far below the layer meanwhile
            severe = self._severe(rates)
            self._settle_until = now + SETTLE
            self._fresh_windows()
            if severe:
                return True, self._step_down(now, rates, len(rates) - 1, audio)
            return True, None
        if now - self._padding_since < PAD_PROBE:
            return True, None
        self._stop_padding()
        self.padding_note = "the line carried the padding"
        return True, self._probe(target, now)

    def _remb_fell(self, now: float, total: float) -> bool:
        """The receiver's own delay-based estimate went down while padding: its
        detector saw the queue grow. REMB only falls on that (it rises, or holds,
        otherwise), and a falling receiver sends it at once, where receiver reports
        come 0.5-1.5 s apart: long enough for the padding to fill a small line's
        queue between two of them."""
        remb, peak = self.remb, self._pad_remb_peak
        if remb is None:
            return False
        if peak is None or remb > peak:
            self._pad_remb_peak = peak = remb
        return remb < PAD_REMB_FALL * peak and remb < total + self._padding_now(now)

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
        """The line itself shows trouble: some loss, NACKs or a queue, not a low
        estimate alone."""
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
        remb_low = False
        if remb is not None and self.layer is not None and sent > 0:
            if not self._remb_caught_up and remb >= 0.95 * total:
                self._remb_caught_up = True
            remb_low = (self._remb_caught_up and remb < 0.85 * total) or (
                not self._remb_caught_up
                and self._remb_at_switch is not None
                and remb < 0.85 * self._remb_at_switch
            )
        if not remb_low:
            self._remb_low_since = None
        elif self._remb_low_since is None:
            self._remb_low_since = now
        remb_congested = False
        if remb_low and remb is not None:
            if shared:
                since = self._remb_low_since
                lasting = since is not None and now - since >= REMB_PERSIST
                remb_congested = lasting or remb < REMB_DEEP * total
            else:
                corroborated = self.loss > 0.02 or self.queue > QUEUE_DELAY / 3
                remb_congested = remb < REMB_ALONE_DEEP * sent and corroborated
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
            self._remb_at_switch = self.remb
            self._remb_caught_up = False
            if resuming:
                # the loss counted before video paused (the last of a full line's
                # queue) says nothing of the line now: it paused video again at once
                self._fresh_windows()
                self._resumed_at_sequence = self._reports[-1][1] if self._reports else None
        else:
            self._remb_caught_up = True
            self._settle_until = now + SETTLE
            self._fresh_windows()
        return Decision(target, reason)
