"""Running the after-lesson rendition job, one lesson at a time, each in its own
low-priority process (`python -m recorder.process`), so that it never takes the
event loop or a live lesson's CPU.

A lesson is queued when it closes (after `delay` seconds: a teacher who comes
straight back continues the same archive) and, at start-up, when its archive's
renditions are missing or out of date, which is how a job cut short by a crash or
a restart is taken up again. The job itself is resumable and idempotent, so
queueing a lesson twice costs nothing.
"""

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import recorder
from recorder.process import EXIT_BUSY
from server.library import Library

logger = logging.getLogger(__name__)

BUSY_RETRY_SECONDS = 10.0
STOP_GRACE_SECONDS = 5.0


def job_environment() -> dict[str, str]:
    """This process's environment, with our packages importable by the child
    whether or not the project is installed."""
    root = str(Path(recorder.__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def job_command(archive: Path, output: Path, *, threads: int, nice: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "recorder.process",
        str(archive),
        str(output),
        "--threads",
        str(threads),
        "--nice",
        str(nice),
    ]


class RenditionJobs:
    def __init__(
        self,
        library: Library,
        *,
        threads: int = 1,
        nice: int = 10,
        delay: float = 10.0,
        is_live: Callable[[str], bool] = lambda lesson: False,
    ) -> None:
        self.library = library
        self.threads = threads
        self.nice = nice
        self.delay = delay
        self._is_live = is_live
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._again: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._worker: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self.running: str | None = None
        self.completed = 0
        self._stopping = False

    def start(self, scan: bool = True) -> None:
        self._worker = asyncio.ensure_future(self._work(scan))

    def lesson_recorded(self, lesson_id: str, archive: Path) -> None:
        """A lesson closed with a recording: process it after the delay."""
        if self._stopping:
            return  # the next start-up finds it
        self.library.ensure_entry(lesson_id)
        self.request(lesson_id, self.delay)

    def request(self, lesson_id: str, delay: float = 0.0) -> None:
        if self._stopping:
            return
        timer = self._timers.pop(lesson_id, None)
        if timer is not None:
            timer.cancel()
        if delay > 0:
            loop = asyncio.get_running_loop()
            self._timers[lesson_id] = loop.call_later(delay, self._enqueue, lesson_id)
        else:
            self._enqueue(lesson_id)

    def _enqueue(self, lesson_id: str) -> None:
        self._timers.pop(lesson_id, None)
        if self._stopping:
            return
        if self._is_live(lesson_id):
            return  # it goes on; its next close queues it again
        if lesson_id == self.running:
            self._again.add(lesson_id)
        elif lesson_id not in self._queued:
            self._queued.add(lesson_id)
            self.library.set_state(lesson_id, "pending")
            self._queue.put_nowait(lesson_id)

    async def _work(self, scan: bool) -> None:
        if scan:
            await self._scan()
        while True:
            lesson_id = await self._queue.get()
            self._queued.discard(lesson_id)
            self.running = lesson_id
            try:
                await self._run(lesson_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("lesson=%s rendition job could not run", lesson_id)
                self.library.set_state(lesson_id, "failed", "the job could not be started")
            finally:
                self.running = None
            if lesson_id in self._again:
                self._again.discard(lesson_id)
                self._enqueue(lesson_id)

    async def _scan(self) -> None:
        """Archives whose renditions are missing or stale: left by a crash, a
        restart, or a job that never ran."""
        lessons = await asyncio.to_thread(self.library.archived_lessons)
        for lesson_id in lessons:
            entry = self.library.ensure_entry(lesson_id)
            stale = await asyncio.to_thread(self.library.needs_processing, lesson_id)
            if stale:
                logger.info("lesson=%s renditions missing or stale: queued", lesson_id)
                self._enqueue(lesson_id)
            elif entry.state != "ready":
                self.library.set_state(lesson_id, "ready")

    async def _run(self, lesson_id: str) -> None:
        library = self.library
        if not library.needs_processing(lesson_id):
            library.set_state(lesson_id, "ready")
            return
        command = job_command(
            library.archive_dir(lesson_id),
            library.output_dir(lesson_id),
            threads=self.threads,
            nice=self.nice,
        )
        library.set_state(lesson_id, "processing")
        logger.info("lesson=%s rendition job started", lesson_id)
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=job_environment(),
        )
        self._process = process
        try:
            _, stderr = await process.communicate()
        finally:
            self._process = None
        code = process.returncode
        if code == 0:
            self.completed += 1
            library.set_state(lesson_id, "ready")
            logger.info("lesson=%s renditions ready", lesson_id)
        elif code == EXIT_BUSY:
            logger.info("lesson=%s another job holds its renditions; retrying", lesson_id)
            self.request(lesson_id, BUSY_RETRY_SECONDS)
        elif self._stopping:
            pass  # stopped by us: the next start-up takes it up again
        else:
            status = library.job_status(lesson_id)
            error = status.error if status is not None and status.error else f"exit {code}"
            tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
            logger.error("lesson=%s rendition job failed: %s %s", lesson_id, error, tail)
            library.set_state(lesson_id, "failed", error)

    async def close(self) -> None:
        """Stop: pending lessons stay for the next start-up; a running job is asked to
        stop (it resumes later), and killed if it does not."""
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), STOP_GRACE_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if process is not None and process.returncode is None:
            await process.wait()
