"""A padding probe: the padding a subscriber gets before its layer moves up, and
what stops it.

A probe pads first where the sender can (RTX negotiated): padding on top of the
subscriber's layer, rising over `PAD_RAMP` seconds to `PAD_OVER` times the next
layer's rate and held there to `PAD_PROBE`. The layer moves up only if the line
stayed clean. Besides congestion (the layer controller's judgement), three things
stop it at once:
- a queue on any one report (`PAD_QUEUE`);
- NACKs for a tenth of the packets sent over the last half second;
- a REMB that falls (the receiver's own delay detector saw the queue grow, and it
  says so at once, between two reports).

Rising slowly, the padding fills a full line's queue over a second or two, so a
report shows the queue before the shaper drops. Switching straight up into a line
that cannot carry the next layer (360p at 450 kbit/s to a top of 1.3 Mbit/s on a 1
Mbit/s line) cost 1-1.6 s of frozen picture each time, the largest share of the
rural benchmark's freezes.
"""

from media.nackshare import NackShare

PAD_RAMP = 6.0  # seconds over which padding rises to the next layer's rate...
PAD_PROBE = 7.0  # ...and seconds of padding in all before moving up to it
PAD_QUEUE = 0.08  # a queue this long on one report stops padding
PAD_OVER = 1.1  # ...padding to this share above that layer's rate
PAD_NACK_SHARE = 0.1  # NACKs for this share of the packets sent since the padding began...
PAD_NACK_MIN = 5  # ...and at least this many stop it
PAD_NACK_WINDOW = 0.5  # ...counted over this many seconds at most
PAD_REMB_FALL = 0.9  # a REMB this far below its highest since the padding began stops it


class PaddingProbe:
    def __init__(self) -> None:
        self.target: int | None = None  # the layer it is for; None: no probe
        self.bps = 0.0  # the padding at the top of its ramp, on top of the layer
        self.note = ""  # why padding started or stopped, for the log
        self.overflow = False  # NACKs said the line overflowed
        self._since = 0.0
        self._packets: tuple[int, int] | None = None  # (sent, NACKed) at its start
        self._remb_peak: float | None = None  # the highest REMB since it began

    def start(self, target: int, now: float, rate: float, total: float, remb: float | None) -> None:
        """Pad for layer `target` of `rate` bps, over the `total` sent now."""
        self.target = target
        self.bps = max(0.0, PAD_OVER * rate - total)
        self.note = f"probing for a layer of {rate:.0f} bps"
        self.overflow = False
        self._since = now
        self._packets = None
        self._remb_peak = remb

    def stop(self, note: str) -> None:
        self.target = None
        self.bps = 0.0
        self.note = note
        self.overflow = False

    def rate_at(self, now: float) -> float:
        """The padding rate at `now`, on its way up."""
        if self.target is None:
            return 0.0
        return self.bps * min(1.0, (now - self._since) / PAD_RAMP)

    def held(self, now: float) -> bool:
        """The padding ran its full time."""
        return now - self._since >= PAD_PROBE

    def start_counting(self, packets_sent: int, nacked: int) -> None:
        """The running totals when the padding began."""
        if self.target is not None:
            self._packets = (packets_sent, nacked)

    def nacked(self, nacks: NackShare, now: float, packets_sent: int, nacked: int) -> bool:
        """NACKs came (`nacks` has them already): whether they stop the padding."""
        if self._packets is None:
            self._packets = (packets_sent, nacked)
            return False
        # over the last PAD_NACK_WINDOW, or since the padding began if that is later:
        # counted from the start of a long probe, a line that fell 5 s in needed
        # 22 NACKed packets and stopped the padding only on the next report
        sent, asked = nacks.since(now, PAD_NACK_WINDOW, self._packets)
        self.overflow = asked >= max(PAD_NACK_MIN, PAD_NACK_SHARE * sent)
        return self.overflow

    @staticmethod
    def queued(queue_now: float) -> bool:
        """One report's queue that stops the padding."""
        return queue_now > PAD_QUEUE

    def remb_fell(self, remb: float | None, total: float, now: float) -> bool:
        """The receiver's own delay-based estimate went down while padding: its
        detector saw the queue grow. REMB only falls on that (it rises, or holds,
        otherwise), and a falling receiver sends it at once, where receiver reports
        come 0.5-1.5 s apart: long enough for the padding to fill a small line's
        queue between two of them."""
        if remb is None:
            return False
        peak = self._remb_peak
        if peak is None or remb > peak:
            self._remb_peak = peak = remb
        return remb < PAD_REMB_FALL * peak and remb < total + self.rate_at(now)
