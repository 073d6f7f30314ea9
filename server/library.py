"""The library: recorded lessons, their catalog entries and their renditions.

    DATA_DIR/recordings/<lesson>/   the live archive (recorder.archive)
    DATA_DIR/library/<lesson>/      the renditions (recorder.renditions), served
    DATA_DIR/zhuandi.db             the catalog (server.library_store)

An archive gets a catalog entry when its lesson ends, or at start-up for archives
that have none; its title is the lesson's title from the store, else its id, and
its date is the day it was recorded.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from recorder.archive import MANIFEST, Archive
from recorder.renditions import MP4, RESULT, outputs_current, read_result
from recorder.status import JobStatus, read_status
from server.library_access import Viewer, can_view
from server.library_store import LibraryEntry, LibraryQuery, LibraryRepository, entry_to_json
from server.tokens import LESSON_ID

logger = logging.getLogger(__name__)

RECORDINGS = "recordings"
LIBRARY = "library"


class Library:
    def __init__(
        self,
        data_dir: Path,
        repository: LibraryRepository,
        title_for: Callable[[str], str | None] = lambda lesson: None,
    ) -> None:
        self.recordings = data_dir / RECORDINGS
        self.root = data_dir / LIBRARY
        self.repository = repository
        self._title_for = title_for

    def archive_dir(self, lesson_id: str) -> Path:
        return self.recordings / lesson_id

    def output_dir(self, lesson_id: str) -> Path:
        return self.root / lesson_id

    def archived_lessons(self) -> list[str]:
        """Lessons with an archive on disk, by name."""
        if not self.recordings.is_dir():
            return []
        return sorted(
            path.name
            for path in self.recordings.iterdir()
            if LESSON_ID.match(path.name) and (path / MANIFEST).is_file()
        )

    def ensure_entry(self, lesson_id: str) -> LibraryEntry:
        """The lesson's catalog entry, made from its archive if it has none."""
        entry = self.repository.get(lesson_id)
        if entry is not None:
            return entry
        created = time.time()
        if (self.archive_dir(lesson_id) / MANIFEST).is_file():
            created = Archive(self.archive_dir(lesson_id), lesson_id).manifest.created
        entry = LibraryEntry(
            id=lesson_id,
            title=self._title_for(lesson_id) or lesson_id,
            date=time.strftime("%Y-%m-%d", time.localtime(created)),
            created=created,
        )
        self.repository.put(entry)
        logger.info("lesson=%s added to the library", lesson_id)
        return entry

    def needs_processing(self, lesson_id: str) -> bool:
        archive = self.archive_dir(lesson_id)
        return (archive / MANIFEST).is_file() and not outputs_current(
            archive, self.output_dir(lesson_id)
        )

    def set_state(self, lesson_id: str, state: str, error: str | None = None) -> None:
        entry = self.repository.get(lesson_id)
        if entry is None:
            return
        changes: dict[str, Any] = {"state": state, "error": error}
        if state == "ready":
            result = read_result(self.output_dir(lesson_id))
            if result is not None:
                changes["duration"] = result.get("duration")
        self.repository.put(entry.changed(**changes))

    def job_status(self, lesson_id: str) -> JobStatus | None:
        return read_status(self.output_dir(lesson_id))

    def result(self, lesson_id: str) -> dict[str, Any] | None:
        return read_result(self.output_dir(lesson_id))

    def playable(self, lesson_id: str) -> bool:
        output = self.output_dir(lesson_id)
        return (output / RESULT).is_file() and (output / MP4).is_file()

    def search(self, query: LibraryQuery, viewer: Viewer) -> list[LibraryEntry]:
        return [e for e in self.repository.search(query) if can_view(e, viewer)]

    def describe(self, entry: LibraryEntry, viewer: Viewer) -> dict[str, Any]:
        """An entry as the API shows it: catalog fields, job progress, file URLs."""
        data: dict[str, Any] = entry_to_json(entry)
        data["state"] = entry.state
        if entry.error:
            data["error"] = entry.error
        status = self.job_status(entry.id) if entry.state != "ready" else None
        if status is not None and status.state == "running":
            data["progress"] = {"stage": status.stage, "percent": status.percent}
        data["replay"] = f"/library/{entry.id}"
        result = self.result(entry.id) if self.playable(entry.id) else None
        if result is not None:
            private = entry.visibility == "private" and viewer.token
            query = f"?token={quote(viewer.token, safe='')}" if private else ""
            base = f"/library/{entry.id}/files/"
            data["files"] = {
                "mp4": base + str(result["mp4"]) + query,
                "hls": base + str(result["hls"]) + query,
                "thumbnail": base + str(result["thumbnail"]) + query
                if result.get("thumbnail")
                else None,
            }
            audio = next((r for r in result.get("renditions", []) if r.get("audio_only")), None)
            data["files"]["audio"] = base + str(audio["playlist"]) + query if audio else None
            data["renditions"] = [
                {k: r[k] for k in ("name", "width", "height", "bandwidth")}
                for r in result.get("renditions", [])
            ]
        return data
