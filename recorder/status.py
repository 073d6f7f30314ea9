"""A rendition job's progress, as a small JSON file that others read, and the lock
that keeps two jobs out of one output directory.

The status file is replaced atomically (a temporary file, then a rename), so a
reader never sees half of it, and written at most a few times a second. It says
which stages are done for which archive digest: that is what a resumed job reads.
"""

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUS = "status.json"
LOCK = ".lock"
WRITE_EVERY = 0.5  # seconds between progress writes within a stage


class JobBusyError(Exception):
    """Another process holds this output directory's lock."""


@dataclass
class JobStatus:
    lesson: str = ""
    digest: str = ""
    state: str = "running"  # running, done, failed
    stage: str = ""
    percent: float = 0.0
    stages: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # what each stage done found
    error: str | None = None
    pid: int = 0
    started: float = 0.0
    updated: float = 0.0


def read_status(directory: Path) -> JobStatus | None:
    """The status in `directory`, or None if there is none or it cannot be read."""
    try:
        data: dict[str, Any] = json.loads((directory / STATUS).read_text(encoding="utf-8"))
        known = JobStatus.__dataclass_fields__
        return JobStatus(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


class Progress:
    """Writes the status of one job: stage weights make one percentage."""

    def __init__(self, directory: Path, status: JobStatus, weights: dict[str, float]) -> None:
        self.directory = directory
        self.status = status
        self._weights = weights
        self._last_write = 0.0

    def _base(self) -> float:
        return sum(w for name, w in self._weights.items() if name in self.status.done)

    def _total(self) -> float:
        return sum(self._weights.values()) or 1.0

    def begin(self, stage: str) -> None:
        self.status.stage = stage
        self.update(0.0, force=True)

    def update(self, fraction: float, force: bool = False) -> None:
        """The current stage is `fraction` (0..1) done."""
        now = time.time()
        if not force and now - self._last_write < WRITE_EVERY:
            return
        weight = self._weights.get(self.status.stage, 0.0)
        share = self._base() + weight * min(max(fraction, 0.0), 1.0)
        # 100 means finished, which only `finish()` says
        self.status.percent = round(min(99.9, 100.0 * share / self._total()), 1)
        self.save(now)

    def stage_done(self, stage: str) -> None:
        if stage not in self.status.done:
            self.status.done.append(stage)
        self.update(0.0, force=True)

    def finish(self) -> None:
        self.status.state = "done"
        self.status.stage = ""
        self.status.percent = 100.0
        self.save(time.time())

    def fail(self, error: str) -> None:
        self.status.state = "failed"
        self.status.error = error
        self.save(time.time())

    def save(self, now: float) -> None:
        self._last_write = now
        self.status.updated = now
        write_json_atomic(self.directory / STATUS, asdict(self.status))


@contextlib.contextmanager
def job_lock(directory: Path) -> Iterator[None]:
    """Hold the output directory's lock, or raise JobBusyError. The kernel lets go
    of it when the process dies, however it dies."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobBusyError(f"another job is writing {directory}") from None
        yield
    finally:
        os.close(fd)
