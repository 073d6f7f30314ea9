"""One lesson's archive: a directory of segments and a manifest that lists them.

A lesson is one archive. When the teacher reconnects, changes camera resolution, or
the server restarts, the recording goes on in a new segment of the same archive;
a segment is never overwritten. The manifest is replaced atomically, so a crash
leaves either the old or the new one, never half of it.
"""

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "archive.json"
SEGMENT = re.compile(r"^segment-(\d{4,})\.(mkv|webm|mp4)$")
STAGE = re.compile(r"^stage-(\d{4,})\.mka$")
EXTENSIONS = {"vp8": "mkv", "h264": "mp4"}


@dataclass
class Segment:
    file: str
    reason: str  # start, reconnect, resolution, restart, resume
    started: float
    ended: float | None = None
    video: str | None = None
    size: list[int] | None = None


@dataclass
class Manifest:
    lesson: str
    state: str = "recording"  # recording or finished
    segments: list[Segment] = field(default_factory=list)
    # the audio of classrooms brought on stage, each time in a file of its own
    stage: list[Segment] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    finished: float | None = None
    format: int = 1


class Archive:
    def __init__(self, directory: str | os.PathLike[str], lesson: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manifest = self._load() or Manifest(lesson)
        # A manifest still "recording" when we open it was left by a process that died.
        self.interrupted = self.manifest.state == "recording" and bool(self.manifest.segments)
        for segment in self.manifest.segments:
            if segment.ended is None:
                path = self.directory / segment.file
                segment.ended = path.stat().st_mtime if path.exists() else segment.started

    def _load(self) -> Manifest | None:
        path = self.directory / MANIFEST
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        segments = [Segment(**s) for s in data.pop("segments", [])]
        stage = [Segment(**s) for s in data.pop("stage", [])]
        return Manifest(**data, segments=segments, stage=stage)

    def save(self) -> None:
        path = self.directory / MANIFEST
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self.manifest), indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def new_segment(self, reason: str, video_codec: str | None) -> Segment:
        """A fresh segment file name, after every file already in the directory."""
        numbers = [
            int(m.group(1)) for p in self.directory.iterdir() if (m := SEGMENT.match(p.name))
        ]
        extension = EXTENSIONS.get(video_codec or "vp8", "mkv")
        segment = Segment(
            file=f"segment-{max(numbers, default=0) + 1:04d}.{extension}",
            reason=reason,
            started=time.time(),
            video=video_codec,
        )
        self.manifest.state = "recording"
        self.manifest.finished = None
        self.manifest.segments.append(segment)
        self.save()
        return segment

    def new_stage_file(self, seat: str) -> Segment:
        """A fresh file for the audio of the classroom `seat` on stage."""
        numbers = [int(m.group(1)) for p in self.directory.iterdir() if (m := STAGE.match(p.name))]
        segment = Segment(
            file=f"stage-{max(numbers, default=0) + 1:04d}.mka",
            reason=f"stage:{seat}",
            started=time.time(),
        )
        self.manifest.stage.append(segment)
        self.save()
        return segment

    def end_segment(self, segment: Segment, size: tuple[int, int] | None) -> None:
        segment.ended = time.time()
        segment.size = list(size) if size else None
        self.save()

    def finish(self) -> None:
        self.manifest.state = "finished"
        self.manifest.finished = time.time()
        self.save()

    def segment_paths(self) -> list[Path]:
        return [
            self.directory / s.file
            for s in self.manifest.segments
            if (self.directory / s.file).exists()
        ]
