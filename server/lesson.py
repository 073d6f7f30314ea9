"""A live lesson: its peers, its sources, and what each peer may see of it."""

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import MediaSettings, Settings
from media.background import spawn
from media.ladder import Ladder
from media.source import Source
from recorder.archive import Archive
from recorder.recording import LessonRecording
from server.errors import UserError
from server.peer import Peer

logger = logging.getLogger(__name__)

CLOCK_RATES = {"video": 90000, "audio": 48000}
TICK_SECONDS = 1.0
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
        self._sources: dict[str, Source] = {}
        self._state_pending = False
        self._ladder: Ladder | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[Lesson], None]] = []
        # told (lesson id, archive directory) when the lesson closes after recording
        self.recording_finished: list[Callable[[str, Path], None]] = []
        self._recorded: Path | None = None

    # -- sources -----------------------------------------------------------

    def source_for(self, kind: str) -> Source:
        """The teacher's camera (video) or microphone (audio)."""
        name = "camera" if kind == "video" else "microphone"
        source = self._sources.get(name)
        if source is None:
            codec = self._settings.video_codec if kind == "video" else "opus"
            source = Source(
                f"{self.id}/{name}",
                kind,
                codec,
                CLOCK_RATES[kind],
                keyframe_min_interval=self._settings.keyframe_min_interval,
                keyframe_cache_seconds=self._settings.keyframe_cache_seconds,
                queue_frames=self._settings.subscriber_queue_frames if kind == "video" else 50,
            )
            self._sources[name] = source
        return source

    @property
    def sources(self) -> dict[str, Source]:
        return dict(self._sources)

    def ladder(self) -> Ladder:
        """The teacher camera's ladder: its own stream on top, lower renditions below."""
        if self._ladder is None:
            self._ladder = Ladder(
                self.source_for("video"),
                keyframe_min_interval=0.5,
                queue_frames=self._settings.subscriber_queue_frames,
            )
        return self._ladder

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
            for peer in list(self.peers.values()):
                peer.evaluate_links()
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
        camera = self._sources.get("camera")
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
            and any(s.live for s in self._sources.values())
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
        logger.info("lesson=%s peer=%s joined as %s %r", self.id, peer.id, peer.role, peer.name)
        self.changed()

    def remove(self, peer: Peer) -> None:
        if self.peers.pop(peer.id, None) is not None:
            logger.info("lesson=%s peer=%s left", self.id, peer.id)
            self.changed()

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
        for peer in list(self.peers.values()):
            peer.send(self.state_for(peer))
        for listener in self.listeners:
            listener(self)

    def state_for(self, peer: Peer) -> dict[str, Any]:
        teacher = self.teacher
        state: dict[str, Any] = {
            "type": "state",
            "lesson": self.id,
            "teacher": {
                "present": teacher is not None,
                "live": self.live,
                "name": teacher.name if teacher else None,
            },
            "media": peer.media_state,
            "recording": self.recording is not None,
        }
        if peer.role == "teacher":
            state["classrooms"] = [
                {
                    "peer": p.id,
                    "name": p.name,
                    "media": p.media_state,
                    "quality": p.link_stats().get("quality"),
                }
                for p in self.peers.values()
                if p.role == "classroom"
            ]
        else:
            state["video"] = peer.video_state()
        return state

    async def aclose(self) -> None:
        """Close the lesson: finish its recording (off the event loop), then the rest."""
        await self.stop_recording()
        self.close()

    def close(self) -> None:
        if self.recording is not None:  # a synchronous close can only abandon it cleanly
            self.recording.close()
            self.recording = None
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._ladder is not None:
            self._ladder.close()
            self._ladder = None
        for source in self._sources.values():
            source.close()
        self._sources.clear()
        recorded, self._recorded = self._recorded, None
        if recorded is not None:
            for callback in self.recording_finished:
                try:
                    callback(self.id, recorded)
                except Exception:
                    logger.exception("lesson=%s recording_finished callback failed", self.id)
