"""Who may speak: raised hands in order, the classroom on stage, and mutes.

Seats are classrooms. Only the teacher changes the stage and the mutes; a classroom
raises or lowers its own hand. A muted classroom is heard nowhere (not in the
teacher's mix, not on stage) until the teacher unmutes it or brings it on stage;
it may raise its hand to ask.
"""

from dataclasses import dataclass, field

from server.errors import UserError


@dataclass
class Floor:
    hands: list[str] = field(default_factory=list)  # seats, first raised first
    stage: str | None = None
    muted: set[str] = field(default_factory=set)
    all_muted: bool = False

    def raise_hand(self, seat: str) -> None:
        if seat not in self.hands and seat != self.stage:
            self.hands.append(seat)

    def lower_hand(self, seat: str) -> None:
        if seat in self.hands:
            self.hands.remove(seat)

    def bring_on_stage(self, seat: str, seats: set[str]) -> str | None:
        """Put `seat` on stage; returns who was there before."""
        if seat not in seats:
            raise UserError("not_found", "that classroom is not in the lesson")
        previous = self.stage
        self.stage = seat
        self.lower_hand(seat)
        self.muted.discard(seat)
        return previous

    def back_to_seat(self) -> str | None:
        previous, self.stage = self.stage, None
        return previous

    def mute(self, seat: str, muted: bool, seats: set[str]) -> None:
        if seat not in seats:
            raise UserError("not_found", "that classroom is not in the lesson")
        if muted:
            self.muted.add(seat)
        else:
            self.muted.discard(seat)

    def mute_all(self, muted: bool, seats: set[str]) -> None:
        self.all_muted = muted
        self.muted = {s for s in seats if s != self.stage} if muted else set()

    def leave(self, seat: str) -> None:
        self.lower_hand(seat)
        self.muted.discard(seat)
        if self.stage == seat:
            self.stage = None

    def is_muted(self, seat: str) -> bool:
        return seat in self.muted
