"""The live lessons of this server, created on first join and closed when empty."""

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from config import Settings
from media.background import spawn
from server.errors import UserError
from server.lesson import Lesson
from server.peer import Peer

logger = logging.getLogger(__name__)


class Lessons:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lessons: dict[str, Lesson] = {}
        self.retired_forwarded = (0, 0)
        self.retired_keyframe_requests = (0, 0)
        # given to every lesson: called with (lesson id, archive directory) when a
        # lesson that recorded closes (the library queues its renditions)
        self.recording_finished: list[Callable[[str, Path], None]] = []
        # told about every lesson opened, before its first peer joins
        self.opened: list[Callable[[Lesson], None]] = []

    def get(self, lesson_id: str) -> Lesson | None:
        return self._lessons.get(lesson_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._lessons.values()))

    def __len__(self) -> int:
        return len(self._lessons)

    @property
    def peer_count(self) -> int:
        return sum(len(lesson.peers) for lesson in self._lessons.values())

    def open(self, lesson_id: str) -> Lesson:
        lesson = self._lessons.get(lesson_id)
        if lesson is None:
            if self.peer_count >= self._settings.server.max_peers:
                raise UserError(
                    "server_full", "the server has no room for more participants", fatal=True
                )
            lesson = Lesson(lesson_id, self._settings)
            lesson.recording_finished = self.recording_finished
            lesson.on_idle = self._closing_soon
            self._lessons[lesson_id] = lesson
            for callback in self.opened:
                callback(lesson)
            lesson.start()
            lesson.start_restored()
            logger.info("lesson=%s opened", lesson_id)
        elif self.peer_count >= self._settings.server.max_peers:
            raise UserError(
                "server_full", "the server has no room for more participants", fatal=True
            )
        return lesson

    async def leave(self, peer: Peer) -> None:
        """Remove a peer and close its media; close the lesson once nobody is left."""
        await peer.close_media()
        packets, octets = peer.forwarded()
        self.retired_forwarded = (
            self.retired_forwarded[0] + packets,
            self.retired_forwarded[1] + octets,
        )
        lesson = peer.lesson
        lesson.remove(peer, gone=peer.left)
        await self.close_if_idle(lesson)

    async def end(self, lesson_id: str) -> None:
        """End a lesson now (its time on the timetable is over): every peer is told
        and leaves for good, seats waiting for their peer are given up, and the
        lesson closes (its recording with it)."""
        lesson = self._lessons.get(lesson_id)
        if lesson is None:
            return
        for peer in list(lesson.peers.values()):
            peer.send(
                {
                    "type": "error",
                    "code": "lesson_ended",
                    "fatal": True,
                    "message": "the lesson is over (its time on the timetable has ended)",
                }
            )
            peer.left = True
            await self.leave(peer)
        lesson.give_up_seats()
        await self.close_if_idle(lesson)
        logger.info("lesson=%s ended by the timetable", lesson_id)

    def _closing_soon(self, lesson: Lesson) -> None:
        spawn(self.close_if_idle(lesson), f"lesson={lesson.id} close")

    async def close_if_idle(self, lesson: Lesson) -> None:
        """Close a lesson nobody is in, and nobody is coming back to."""
        if lesson.idle and self._lessons.get(lesson.id) is lesson:
            for source in lesson.sources.values():
                received, sent = source.keyframe_requests
                self.retired_keyframe_requests = (
                    self.retired_keyframe_requests[0] + received,
                    self.retired_keyframe_requests[1] + sent,
                )
            del self._lessons[lesson.id]
            await lesson.aclose()
            logger.info("lesson=%s closed", lesson.id)

    def discard_if_empty(self, lesson: Lesson) -> None:
        if lesson.idle and self._lessons.get(lesson.id) is lesson:
            lesson.close()
            del self._lessons[lesson.id]

    async def close(self) -> None:
        for lesson in list(self._lessons.values()):
            await asyncio.gather(
                *(peer.close_media() for peer in list(lesson.peers.values())),
                return_exceptions=True,
            )
            await lesson.aclose(keep_state=True)
        self._lessons.clear()
