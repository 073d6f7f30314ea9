"""The pre-class line check: what a classroom's line to the server carries, kept
per classroom, and the layer a classroom starts a lesson on.

The classroom page measures (web/static/js/linecheck.js):

- downlink: a timed download of incompressible bytes over HTTP (TCP), sized to
  take about a second and a half;
- uplink: a timed upload the same way;
- RTT and loss: 100 small messages over a WebRTC data channel that neither
  orders nor retransmits (so over UDP, the media's own path), echoed by the
  server. Loss is round-trip loss: a message or its echo was lost.

The figures describe the line at that moment, on an idle line, and through TCP
for the throughput: a line shared with others at lesson time may carry less.
That is why they only choose the starting layer; the server adapts from there.
"""

from dataclasses import dataclass
from pathlib import Path

from server.database import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS line_checks (
    classroom TEXT NOT NULL,
    at REAL NOT NULL,
    down_bps REAL NOT NULL,
    up_bps REAL NOT NULL,
    rtt_ms REAL,
    loss REAL,
    layer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS line_checks_classroom ON line_checks (classroom, at);
"""

# The teacher's camera ladder (media/ladder.py): 0 is the teacher's own stream,
# then 360p and 180p; None is audio only.
LAYER_NAMES = {0: "top", 1: "360p", 2: "180p", None: "audio"}
LAYER_INDEX = {name: index for index, name in LAYER_NAMES.items()}
# What each layer needs of the downlink, with room for audio, the courseware and
# the classroom on stage, which share the line.
NEEDS = ((0, 2_500_000.0), (1, 900_000.0), (2, 300_000.0))
HIGH_LOSS = 0.05  # round-trip loss above which the top layer is not tried first
BAD_LOSS = 0.20
VERDICTS = {0: "good", 1: "fair", 2: "poor", None: "bad"}
# A check older than this no longer chooses the starting layer.
FRESH_SECONDS = 7 * 86400.0


@dataclass(frozen=True)
class LineCheck:
    classroom: str
    at: float
    down_bps: float
    up_bps: float
    rtt_ms: float | None
    loss: float | None
    layer: str  # the starting layer it chose

    @property
    def verdict(self) -> str:
        return VERDICTS[LAYER_INDEX[self.layer]]


def starting_layer(down_bps: float, loss: float | None) -> int | None:
    """The highest layer the measured downlink carries with room to spare."""
    loss = loss or 0.0
    if loss >= BAD_LOSS:
        return 2 if down_bps >= NEEDS[2][1] else None
    for layer, needs in NEEDS:
        if layer == 0 and loss > HIGH_LOSS:
            continue
        if down_bps >= needs:
            return layer
    return None


class LineChecks:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(
        self,
        classroom: str,
        at: float,
        down_bps: float,
        up_bps: float,
        rtt_ms: float | None,
        loss: float | None,
    ) -> LineCheck:
        check = LineCheck(
            classroom,
            at,
            down_bps,
            up_bps,
            rtt_ms,
            loss,
            LAYER_NAMES[starting_layer(down_bps, loss)],
        )
        self._db.execute(
            "INSERT INTO line_checks (classroom, at, down_bps, up_bps, rtt_ms, loss, layer) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (classroom, at, down_bps, up_bps, rtt_ms, loss, check.layer),
        )
        return check

    def latest(self, classroom: str) -> LineCheck | None:
        found = self.history(classroom, limit=1)
        return found[0] if found else None

    def history(
        self, classroom: str | None = None, since: float = 0.0, limit: int = 1000
    ) -> list[LineCheck]:
        """Newest first; of one classroom, or of all."""
        sql = f"SELECT {_COLUMNS} FROM line_checks WHERE at >= ?"
        args: list[object] = [since]
        if classroom is not None:
            sql += " AND classroom = ?"
            args.append(classroom)
        sql += " ORDER BY at DESC LIMIT ?"
        args.append(limit)
        return [_check(r) for r in self._db.execute(sql, args)]

    def starting_layer_of(self, classroom: str, now: float) -> int | None:
        """The layer a classroom's latest fresh check chose; the top without one."""
        latest = self.latest(classroom)
        if latest is None or now - latest.at > FRESH_SECONDS:
            return 0
        return LAYER_INDEX[latest.layer]


_COLUMNS = "classroom, at, down_bps, up_bps, rtt_ms, loss, layer"


def _check(row: tuple[object, ...]) -> LineCheck:
    classroom, at, down, up, rtt, loss, layer = row
    return LineCheck(
        str(classroom),
        float(at),  # type: ignore[arg-type]
        float(down),  # type: ignore[arg-type]
        float(up),  # type: ignore[arg-type]
        float(rtt) if isinstance(rtt, int | float) else None,
        float(loss) if isinstance(loss, int | float) else None,
        str(layer),
    )
