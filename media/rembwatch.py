"""Whether a subscriber's REMB says its line is congested.

A browser's REMB covers its whole connection and is a good signal when it lasts
(`REMB_PERSIST`), or at once when it is deep. An aiortc receiver estimates each
stream alone, ramps slowly and reads a busy CPU as a queue, so its REMB only counts
when it is deep and loss or a queue agrees.

REMB lags a rate increase by seconds, so right after an up-switch a low REMB only
counts once REMB has caught up with the new rate, or falls clearly below where it
was at the switch.
"""

REMB_LOW = 0.85  # REMB under this share of what is sent is low...
REMB_PERSIST = 0.4  # ...and a browser's counts once it lasts this long (seconds)...
REMB_DEEP = 0.6  # ...or at once when it is below this share of what is sent
REMB_ALONE_DEEP = 0.5  # a per-stream REMB must fall this low, with loss or a queue
CAUGHT_UP = 0.95  # after an up-switch, REMB has caught up at this share of what is sent
ALONE_LOSS = 0.02  # ...the loss,
ALONE_QUEUE = 0.05  # ...or the queue (seconds) that agrees with a per-stream REMB


class RembWatch:
    def __init__(self) -> None:
        self._at_switch: float | None = None  # REMB at the last switch up
        self._caught_up = True
        self._low_since: float | None = None

    def switched_up(self, remb: float | None) -> None:
        self._at_switch = remb
        self._caught_up = False

    def switched_down(self) -> None:
        self._caught_up = True

    def restart(self) -> None:
        """Windows start afresh: a low REMB counts from now on."""
        self._low_since = None

    def congested(
        self,
        now: float,
        remb: float | None,
        sent: float,
        total: float,
        shared: bool,
        loss: float,
        queue: float,
    ) -> bool:
        """`sent` is this stream's rate, `total` the connection's; `shared`: REMB
        covers the whole connection (a browser's)."""
        low = False
        if remb is not None and sent > 0:
            if not self._caught_up and remb >= CAUGHT_UP * total:
                self._caught_up = True
            low = (self._caught_up and remb < REMB_LOW * total) or (
                not self._caught_up
                and self._at_switch is not None
                and remb < REMB_LOW * self._at_switch
            )
        if not low or remb is None:
            self._low_since = None
            return False
        if self._low_since is None:
            self._low_since = now
        if shared:
            lasting = now - self._low_since >= REMB_PERSIST
            return lasting or remb < REMB_DEEP * total
        corroborated = loss > ALONE_LOSS or queue > ALONE_QUEUE
        return remb < REMB_ALONE_DEEP * sent and corroborated
