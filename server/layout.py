"""What each m-line of an offer carries, and whether the peer's role allows it.

An offer's `media` field names its m-lines in order, as "send:NAME" (the peer
publishes) or "receive:NAME" (the server sends to the peer). Without it, a default
follows the role, which is what the first pages and clients sent: the teacher
publishes its microphone, camera and then courseware; classrooms and observers
receive the teacher's audio, camera and courseware.
"""

from dataclasses import dataclass

from server.errors import UserError

SEND = "send"
RECEIVE = "receive"

KINDS = {
    # published by the peer
    (SEND, "microphone"): "audio",
    (SEND, "camera"): "video",
    (SEND, "courseware"): "video",
    # sent to the peer
    (RECEIVE, "teacher-audio"): "audio",
    (RECEIVE, "teacher-camera"): "video",
    (RECEIVE, "courseware"): "video",
    (RECEIVE, "stage-audio"): "audio",
    (RECEIVE, "stage-camera"): "video",
    (RECEIVE, "classroom-mix"): "audio",
    (RECEIVE, "grid"): "video",
}

ALLOWED = {
    "teacher": {
        (SEND, "microphone"),
        (SEND, "camera"),
        (SEND, "courseware"),
        (RECEIVE, "classroom-mix"),
        (RECEIVE, "grid"),
        (RECEIVE, "stage-camera"),
    },
    "classroom": {
        (SEND, "microphone"),
        (SEND, "camera"),
        (RECEIVE, "teacher-audio"),
        (RECEIVE, "teacher-camera"),
        (RECEIVE, "courseware"),
        (RECEIVE, "stage-audio"),
        (RECEIVE, "stage-camera"),
    },
    "observer": {
        (RECEIVE, "teacher-audio"),
        (RECEIVE, "teacher-camera"),
        (RECEIVE, "courseware"),
        (RECEIVE, "stage-audio"),
        (RECEIVE, "stage-camera"),
    },
}

MAX_GRID = 16

DEFAULTS = {
    "teacher": {"audio": [(SEND, "microphone")], "video": [(SEND, "camera"), (SEND, "courseware")]},
    "classroom": {
        "audio": [(RECEIVE, "teacher-audio")],
        "video": [(RECEIVE, "teacher-camera"), (RECEIVE, "courseware")],
    },
}
DEFAULTS["observer"] = DEFAULTS["classroom"]


@dataclass(frozen=True)
class Line:
    kind: str  # audio or video
    direction: str  # send (the peer publishes) or receive
    name: str


def plan(role: str, kinds: list[str], named: object) -> list[Line]:
    """The m-lines of an offer (their kinds, in order), named by the offer's `media`
    field or by the role's default. Raises UserError naming what is wrong."""
    if named is None:
        return _default(role, kinds)
    if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
        raise UserError("bad_message", "'offer.media' must be a list of strings")
    if len(named) != len(kinds):
        raise UserError(
            "bad_sdp",
            f"'offer.media' names {len(named)} m-lines but the SDP has {len(kinds)}",
        )
    lines = []
    for index, (kind, entry) in enumerate(zip(kinds, named, strict=True)):
        direction, _, name = entry.partition(":")
        key = (direction, name)
        if key not in KINDS:
            raise UserError("bad_sdp", f"m-line {index}: unknown media {entry[:40]!r}")
        if KINDS[key] != kind:
            raise UserError("bad_sdp", f"m-line {index}: {entry} is {KINDS[key]}, not {kind}")
        if key not in ALLOWED.get(role, set()):
            raise UserError("forbidden", f"a {role} may not {direction} {name}")
        lines.append(Line(kind, direction, name))
    _check_counts(lines)
    return lines


def _default(role: str, kinds: list[str]) -> list[Line]:
    pending = {kind: list(entries) for kind, entries in DEFAULTS.get(role, {}).items()}
    lines = []
    for kind in kinds:
        options = pending.get(kind)
        if not options:
            raise UserError("bad_sdp", f"the offer has more {kind} m-lines than a {role} uses")
        direction, name = options.pop(0)
        lines.append(Line(kind, direction, name))
    return lines


def _check_counts(lines: list[Line]) -> None:
    seen: set[tuple[str, str]] = set()
    grid = 0
    for line in lines:
        key = (line.direction, line.name)
        if line.name == "grid":
            grid += 1
            if grid > MAX_GRID:
                raise UserError("bad_sdp", f"at most {MAX_GRID} grid m-lines")
            continue
        if key in seen:
            raise UserError("bad_sdp", f"{line.direction}:{line.name} appears twice")
        seen.add(key)
