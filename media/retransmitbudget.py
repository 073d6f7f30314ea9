"""How many of one subscriber's NACKs are answered.

aiortc answers every NACK. On a full rural line, NACKs repeated faster than the
queue drains turned into a storm of resends (16 Mbit/s offered to a 1 Mbit/s line,
measured), so retransmissions are limited to a share of what the subscriber is
sent, and each packet is resent at most once per `repeat` seconds.
"""

import time


class RetransmitBudget:
    """Resends to one subscriber: at most `share` of the packets it is sent (and
    `floor` a second always), each packet at most once per `repeat` seconds."""

    def __init__(self, share: float = 0.25, floor: float = 5.0, repeat: float = 0.3) -> None:
        self.share = share
        self.floor = floor  # packets per second always allowed
        self.repeat = repeat
        self._tokens = floor
        self._last = time.monotonic()
        self._last_packets = 0
        self._sent: dict[int, float] = {}
        self.refused = 0

    def allow(self, lost: list[int], packets_sent: int) -> list[int]:
        """Which of the NACKed `lost` to resend, with `packets_sent` so far."""
        now = time.monotonic()
        elapsed = now - self._last
        rate = max(
            self.floor, self.share * (packets_sent - self._last_packets) / max(elapsed, 1e-3)
        )
        self._tokens = min(rate, self._tokens + elapsed * rate)
        self._last, self._last_packets = now, packets_sent
        allowed = []
        for seq in lost:
            if now - self._sent.get(seq, -1e9) < self.repeat or self._tokens < 1:
                self.refused += 1
                continue
            self._tokens -= 1
            self._sent[seq] = now
            allowed.append(seq)
        if len(self._sent) > 1024:
            self._sent = {s: t for s, t in self._sent.items() if now - t < self.repeat}
        return allowed
