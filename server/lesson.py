"""A live lesson: its peers, its sources, and what each peer may see of it."""

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import MediaSettings, Settings
from media.background import spawn
from media.ladder import Ladder
from media.source import Source
from recorder.archive import Archive
from recorder.recording import LessonRecording
from server.chat import Chat
from server.errors import UserError
from server.floor import Floor
from server.peer import Peer
from server.seats import LessonState, SavedLesson, Seat
from server.streams import TEACHER, LessonStreams

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
SPEAKING_DBFS = -40.0
SPEAKER_HANG = 1.5  # seconds a speaker stays shown after going quiet (no flicker between words)
MEDIA_SILENCE = 6.0  # seconds without RTCP or RTP before a media connection is given up
STATS_EVERY = 2  # ticks


class Lesson:
    def __init__(self, lesson_id: str, settings: Settings) -> None:
        self.id = lesson_id
        self.max_peers = settings.server.max_peers_per_lesson
        self.peers: dict[str, Peer] = {}
        self._settings: MediaSettings = settings.media
        self.record = settings.recorder.enabled
        self._keyframe_interval = settings.recorder.keyframe_interval
        self._recordings_dir = settings.data_path / "recordings"
        self.recording: LessonRecording | None = None
        self.streams = LessonStreams(lesson_id, settings.media)
        self.floor = Floor()
        self.chat = Chat(self._recordings_dir / lesson_id)
        self.speaking: str | None = None
        self._speaker_heard_at = 0.0
        self._state_pending = False
        self._ticker: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[Lesson], None]] = []
        # told (lesson id, archive directory) when the lesson closes after recording
        self.recording_finished: list[Callable[[str, Path], None]] = []
        self._recorded: Path | None = None
        self.seats: dict[str, Seat] = {}
        self.grace = settings.server.reconnect_grace
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        # called when the lesson has nobody left, not even a seat waiting for its peer
        self.on_idle: Callable[[Lesson], None] | None = None
        # asked for the layer a new seat starts on (its classroom's line check)
        self.starting_layer: Callable[[Peer], int | None] | None = None
        self._saved = LessonState(settings.data_path / "lessons", lesson_id)
        self._restore()

    # -- seats -----------------------------------------------------------------

    def _restore(self) -> None:
        """After a restart: the seats, the floor and the recording switch as they
        were. Every seat waits for its peer to come back."""
        saved = self._saved.load()
        if saved is None:
            return
        now = time.monotonic()
        for data in saved.seats:
            seat = Seat(**{**data, "peer_id": None, "away_since": now})
            self.seats[seat.key] = seat
        self.floor.stage = saved.stage if saved.stage in self.seats else None
        self.floor.hands = [s for s in saved.hands if s in self.seats]
        self.floor.muted = {s for s in saved.muted if s in self.seats}
        self.floor.all_muted = saved.all_muted
        self.record = saved.record and self.record
        for key in self.floor.muted:
            self.streams.set_muted(key, True)
        self.streams.stage = self.floor.stage
        logger.info("lesson=%s restored %d seats after a restart", self.id, len(self.seats))

    def start_restored(self) -> None:
        """Give the restored seats their grace period (needs the running loop)."""
        for key, seat in self.seats.items():
            if seat.away:
                self._expire_later(key)

    def _save(self) -> None:
        keep = ("key", "role", "name", "cap", "last_layer")
        state = SavedLesson(
            seats=[{k: getattr(s, k) for k in keep} for s in self.seats.values()],
            stage=self.floor.stage,
            hands=list(self.floor.hands),
            muted=sorted(self.floor.muted),
            all_muted=self.floor.all_muted,
            record=self.record,
        )
        try:
            self._saved.save(state)
        except OSError as exc:
            logger.warning("lesson=%s cannot save its state: %s", self.id, exc)

    def occupant(self, key: str) -> Peer | None:
        """The connected peer in seat `key`, if any."""
        seat = self.seats.get(key)
        return self.peers.get(seat.peer_id) if seat and seat.peer_id else None

    @property
    def idle(self) -> bool:
        """Nobody connected, and no seat waiting for its peer to come back."""
        return not self.peers and not any(seat.away for seat in self.seats.values())

    def _expire_later(self, key: str) -> None:
        old = self._expiry.pop(key, None)
        if old is not None:
            old.cancel()
        self._expiry[key] = asyncio.get_running_loop().call_later(self.grace, self._expire, key)

    def _expire(self, key: str) -> None:
        self._expiry.pop(key, None)
        seat = self.seats.get(key)
        if seat is None or not seat.away:
            return
        logger.info("lesson=%s seat %s gave up reconnecting", self.id, key)
        self._drop_seat(key)
        self.changed()
        if self.idle and self.on_idle is not None:
            self.on_idle(self)

    def give_up_seats(self) -> None:
        """Give up every seat still waiting for its peer (the lesson is over)."""
        for key in [key for key, seat in self.seats.items() if seat.away]:
            self._drop_seat(key)

    def _drop_seat(self, key: str) -> None:
        seat = self.seats.pop(key, None)
        timer = self._expiry.pop(key, None)
        if timer is not None:
            timer.cancel()
        if seat is not None and seat.role == "classroom":
            stage = self.floor.stage
            self.floor.leave(key)
            self.streams.publisher_left(key)
            if stage == key and self.recording is not None:
                self.recording.set_stage(None)

    # -- sources -----------------------------------------------------------

    def source_for(self, kind: str) -> Source:
        """The teacher's camera (video) or microphone (audio)."""
        return self.streams.source(TEACHER, "camera" if kind == "video" else "microphone")

    @property
    def sources(self) -> dict[str, Source]:
        """Every source of the lesson, as "owner/name"."""
        return {f"{owner}/{name}": source for (owner, name), source in self.streams.sources.items()}

    def ladder(self) -> Ladder:
        """The teacher camera's ladder: its own stream on top, lower renditions below."""
        return self.streams.ladder(TEACHER, "camera")

    # -- recording -------------------------------------------------------------

    def publishing_started(self) -> None:
        """The teacher's media now flows: record it, unless recording is off."""
        if self.record and self.recording is None:
            archive = Archive(self._recordings_dir / self.id, self.id)
            self._recorded = archive.directory
            self.recording = LessonRecording(
                archive,
                self.source_for("video"),
                self.source_for("audio"),
                keyframe_interval=self._keyframe_interval,
            )
            self.changed()

    async def set_recording(self, on: bool) -> None:
        """The teacher turns recording on or off for this lesson."""
        self.record = on
        if on:
            if self.live or (self.teacher is not None and self.teacher.upstreams):
                self.publishing_started()
        else:
            await self.stop_recording(finish=False)
        self.changed()

    async def stop_recording(self, finish: bool = True) -> None:
        recording, self.recording = self.recording, None
        if recording is not None:
            await asyncio.to_thread(recording.close, finish)

    # -- the periodic tick -------------------------------------------------------

    def start(self) -> None:
        """Start re-evaluating every subscriber's layer and reporting link stats."""
        if self._ticker is None:
            self._ticker = spawn(self._tick(), f"lesson={self.id} tick")

    async def _tick(self) -> None:
        count = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            count += 1
            now = time.monotonic()
            for peer in list(self.peers.values()):
                peer.evaluate_links()
                if peer.media_silent_for(now) > MEDIA_SILENCE and peer.pc is not None:
                    logger.info("lesson=%s peer=%s media went silent", self.id, peer.id)
                    peer.media_lost()
            self._update_speaker()
            if count % STATS_EVERY == 0:
                teacher = self.teacher
                if teacher is not None:
                    teacher.send({"type": "stats", **self.link_stats()})

    def link_stats(self) -> dict[str, Any]:
        """Each classroom's layer, estimate, loss and RTT (what the teacher sees)."""
        classrooms = []
        for peer in self.peers.values():
            if peer.role != "classroom":
                continue
            classrooms.append({"peer": peer.id, "name": peer.name, **peer.link_stats()})
        camera = self.streams.existing(TEACHER, "camera")
        return {
            "lesson": self.id,
            "teacher": {
                "live": self.live,
                "bitrate_bps": int(camera.rate.bps()) if camera is not None else 0,
                "size": list(camera.size) if camera is not None and camera.size else None,
            },
            "classrooms": classrooms,
        }

    # -- peers -------------------------------------------------------------

    @property
    def teacher(self) -> Peer | None:
        return next((p for p in self.peers.values() if p.role == "teacher"), None)

    @property
    def live(self) -> bool:
        teacher = self.teacher
        return (
            teacher is not None
            and teacher.media_state == "connected"
            and self.streams.publishing(TEACHER)
        )

    def add(self, peer: Peer) -> None:
        if len(self.peers) >= self.max_peers:
            raise UserError(
                "lesson_full",
                f"this lesson already has {self.max_peers} participants",
                fatal=True,
                status=503,
            )
        self.peers[peer.id] = peer
        seat = self.seats.get(peer.seat)
        back = seat is not None and seat.away
        if seat is None:
            first = self.starting_layer(peer) if self.starting_layer is not None else 0
            seat = Seat(peer.seat, peer.role, peer.name, last_layer=first)
            self.seats[peer.seat] = seat
        seat.peer_id, seat.away_since, seat.name = peer.id, None, peer.name
        timer = self._expiry.pop(peer.seat, None)
        if timer is not None:
            timer.cancel()
        peer.cap, peer.initial_layer = seat.cap, seat.last_layer
        logger.info(
            "lesson=%s peer=%s %s as %s %r",
            self.id,
            peer.id,
            "came back" if back else "joined",
            peer.role,
            peer.name,
        )
        self.changed()

    def remove(self, peer: Peer, gone: bool = False) -> None:
        """The peer's connection ended. Unless it left for good (`gone`), its seat
        waits for it to come back."""
        if self.peers.pop(peer.id, None) is None:
            return
        seat = self.seats.get(peer.seat)
        if seat is not None and seat.peer_id == peer.id:
            seat.cap, seat.last_layer = peer.cap, peer.last_layer()
            if gone or peer.role == "observer" or self.grace <= 0:
                self._drop_seat(peer.seat)
            else:
                seat.peer_id, seat.away_since = None, time.monotonic()
                self._expire_later(peer.seat)
        logger.info("lesson=%s peer=%s %s", self.id, peer.id, "left" if gone else "went away")
        self.changed()

    # -- the floor: hands, stage, mutes and chat ----------------------------------

    def classroom_seats(self) -> set[str]:
        """Classrooms in the lesson, including those reconnecting."""
        return {key for key, seat in self.seats.items() if seat.role == "classroom"}

    def seat_name(self, seat: str | None) -> str | None:
        found = self.seats.get(seat) if seat is not None else None
        return found.name if found is not None else None

    def raise_hand(self, peer: Peer, up: bool) -> None:
        if up:
            self.floor.raise_hand(peer.seat)
        else:
            self.floor.lower_hand(peer.seat)
        self.changed()

    def set_stage(self, seat: str | None) -> None:
        """The teacher brings a classroom on stage, or sends it back (None)."""
        if seat is None:
            previous = self.floor.back_to_seat()
        else:
            previous = self.floor.bring_on_stage(seat, self.classroom_seats())
            self.streams.set_muted(seat, False)
        if previous != seat:
            logger.info("lesson=%s stage %s -> %s", self.id, previous, seat)
        self.streams.set_stage(seat)
        if self.recording is not None:
            source = self.streams.existing(seat, "microphone") if seat else None
            self.recording.set_stage(source, seat or "")
        self.changed()

    def mute(self, seat: str, muted: bool) -> None:
        self.floor.mute(seat, muted, self.classroom_seats())
        self.streams.set_muted(seat, muted)
        self.changed()

    def mute_all(self, muted: bool) -> None:
        seats = self.classroom_seats()
        self.floor.mute_all(muted, seats)
        for seat in seats:
            self.streams.set_muted(seat, self.floor.is_muted(seat))
        self.changed()

    def post_chat(self, peer: Peer, text: str) -> None:
        message = self.chat.post(peer.id, peer.name, peer.role, text)
        for other in list(self.peers.values()):
            other.send(message)

    # -- state -------------------------------------------------------------

    def changed(self) -> None:
        """Something peers may see changed: send everyone a fresh state, once per
        loop iteration however many changes happened."""
        if self._state_pending:
            return
        self._state_pending = True
        asyncio.get_running_loop().call_soon(self._broadcast)

    def _broadcast(self) -> None:
        self._state_pending = False
        if self.seats:
            self._save()
        for peer in list(self.peers.values()):
            peer.send(self.state_for(peer))
        for listener in self.listeners:
            listener(self)

    def state_for(self, peer: Peer) -> dict[str, Any]:
        teacher = self.teacher
        teacher_seat = self.seats.get(TEACHER)
        state: dict[str, Any] = {
            "type": "state",
            "lesson": self.id,
            "teacher": {
                "present": teacher is not None,
                "live": self.live,
                "name": teacher_seat.name if teacher_seat else None,
                "reconnecting": teacher_seat is not None and teacher_seat.away,
            },
            "media": peer.media_state,
            "recording": self.recording is not None,
            "stage": self._seat_entry(self.floor.stage),
            "speaking": self._speaker_entry(),
        }
        if peer.role == "teacher":
            floor = self.floor
            classrooms = []
            for key, seat in self.seats.items():
                if seat.role != "classroom":
                    continue
                occupant = self.occupant(key)
                classrooms.append(
                    {
                        "peer": key,
                        "name": seat.name,
                        "media": occupant.media_state if occupant else "reconnecting",
                        "quality": occupant.link_stats().get("quality") if occupant else None,
                        "publishing": self.streams.publishing(key),
                        "hand": key in floor.hands,
                        "on_stage": key == floor.stage,
                        "muted": floor.is_muted(key),
                    }
                )
            state["classrooms"] = classrooms
            state["hands"] = [self._seat_entry(seat) for seat in floor.hands]
            state["all_muted"] = floor.all_muted
            state["grid"] = [self._seat_entry(seat) for seat in self.streams.grid_for(peer.id)]
        else:
            state["video"] = peer.video_state()
            if peer.role == "classroom":
                state["you"] = {
                    "peer": peer.seat,
                    "hand": peer.seat in self.floor.hands,
                    "on_stage": peer.seat == self.floor.stage,
                    "muted": self.floor.is_muted(peer.seat),
                    "publishing": self.streams.publishing(peer.seat),
                }
        return state

    def _seat_entry(self, seat: str | None) -> dict[str, Any] | None:
        if seat is None:
            return None
        return {"peer": seat, "name": self.seat_name(seat)}

    def _speaker_entry(self) -> dict[str, Any] | None:
        if self.speaking is None:
            return None
        if self.speaking == TEACHER:
            teacher = self.teacher
            return {"peer": TEACHER, "name": teacher.name if teacher else None, "role": "teacher"}
        return {"peer": self.speaking, "name": self.seat_name(self.speaking), "role": "classroom"}

    def _update_speaker(self) -> None:
        """Who speaks now: the loudest voice that is heard (the teacher's, from the
        level its browser puts in each packet; the classrooms', from the mix)."""
        candidates: dict[str, float] = {}
        teacher_mic = self.streams.existing(TEACHER, "microphone")
        if teacher_mic is not None and teacher_mic.live:
            candidates[TEACHER] = teacher_mic.peak_audio_level()
        stage = self.floor.stage
        for seat, level in self.streams.peak_levels().items():
            if seat == stage or not self.floor.is_muted(seat):
                candidates[seat] = level
        loud = {k: v for k, v in candidates.items() if v > SPEAKING_DBFS}
        speaker = max(loud, key=lambda k: loud[k]) if loud else None
        now = time.monotonic()
        if speaker is not None:
            self._speaker_heard_at = now
        elif (
            self.speaking in candidates  # still heard (not gone, not muted)
            and now - self._speaker_heard_at < SPEAKER_HANG
        ):
            speaker = self.speaking  # a pause between words
        if speaker != self.speaking:
            self.speaking = speaker
            self.changed()

    async def aclose(self, keep_state: bool = False) -> None:
        """Close the lesson: finish its recording (off the event loop), then the rest.
        With `keep_state` (the server is stopping), the lesson resumes after a restart;
        otherwise it is over."""
        await self.stop_recording()
        self.close()
        if keep_state:
            self._save()
        else:
            self._saved.delete()

    def close(self) -> None:
        if self.recording is not None:  # a synchronous close can only abandon it cleanly
            self.recording.close()
            self.recording = None
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for timer in self._expiry.values():
            timer.cancel()
        self._expiry.clear()
        self.streams.close()
        recorded, self._recorded = self._recorded, None
        if recorded is not None:
            for callback in self.recording_finished:
                try:
                    callback(self.id, recorded)
                except Exception:
                    logger.exception("lesson=%s recording_finished callback failed", self.id)
