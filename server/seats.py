"""Seats: who belongs in a lesson, whether they are connected right now or not.

A classroom's seat is its join link (the token's id): a page reloaded, or a line
that dropped and came back, takes the same seat with its name, its place on stage,
its raised hand, its mute and its quality choice. A seat whose peer went away
without leaving waits `grace` seconds in the "reconnecting" state before it is
given up. The teacher's seat works the same way.

Seats, the floor and the recording switch are also saved to DATA_DIR/lessons/, so
that after a server restart the lesson goes on as it was.
"""

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TEACHER = "teacher"


@dataclass
class Seat:
    key: str
    role: str
    name: str
    cap: str = "auto"
    last_layer: int | None = 0
    peer_id: str | None = None  # the peer in it now; None while it reconnects
    away_since: float | None = None

    @property
    def away(self) -> bool:
        return self.peer_id is None


@dataclass
class SavedLesson:
    seats: list[dict[str, Any]] = field(default_factory=list)
    stage: str | None = None
    hands: list[str] = field(default_factory=list)
    muted: list[str] = field(default_factory=list)
    all_muted: bool = False
    record: bool = True
    saved: float = field(default_factory=time.time)


class LessonState:
    """The saved state of one lesson, in DATA_DIR/lessons/<id>.json."""

    def __init__(self, directory: Path, lesson_id: str) -> None:
        self.path = directory / f"{lesson_id}.json"

    def load(self) -> SavedLesson | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return SavedLesson(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            logger.warning("ignoring the saved lesson state %s: %s", self.path, exc)
            return None

    def save(self, state: SavedLesson) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def seat_key(role: str, token_id: str, peer_id: str) -> str:
    """The teacher has one seat; a classroom's is its link; observers have none of
    their own (each connection is separate)."""
    if role == TEACHER:
        return TEACHER
    if role == "classroom" and token_id:
        return f"c-{token_id}"
    return f"p-{peer_id}"
