"""Media worker processes: each runs the whole application on an internal port, and
holds the lessons placed on it (their connections, media and recordings).

One event loop holds the GIL for all RTP work, so one process uses one core for
forwarding. The front process serves pages and routes each lesson's signalling to
its worker (server/router.py). A worker that dies is started again; its lessons'
pages and clients reconnect by themselves and land on a live worker, where the
lesson's saved state (seats, stage, mutes) brings it back as it was.
"""

import asyncio
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from config import Settings, settings_to_dict

logger = logging.getLogger(__name__)

READY = "zhuandi worker listening on "
START_TIMEOUT = 30.0
RESTART_DELAY = 1.0


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    port: int | None = None
    restarts: int = 0
    generation: int = 0  # counts starts, so that a route knows its worker restarted
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def alive(self) -> bool:
        return (
            self.process is not None and self.process.returncode is None and self.port is not None
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class WorkerPool:
    def __init__(self, settings: Settings, count: int) -> None:
        self.count = count
        self.workers = [Worker(i) for i in range(count)]
        self._settings_file = self._write_settings(settings)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.on_exit: list[Callable[[Worker], None]] = []  # told when a worker died
        self._drains: set[asyncio.Task[None]] = set()

    @staticmethod
    def _write_settings(settings: Settings) -> Path:
        data = settings_to_dict(settings)
        handle = tempfile.NamedTemporaryFile(
            "w", prefix="zhuandi-worker-", suffix=".json", delete=False
        )
        with handle:
            json.dump(data, handle)
        os.chmod(handle.name, 0o600)  # it holds the token secret when one is configured
        return Path(handle.name)

    async def start(self) -> None:
        for worker in self.workers:
            self._tasks.append(asyncio.ensure_future(self._keep(worker)))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await asyncio.gather(*(w.ready.wait() for w in self.workers))
        except TimeoutError:
            raise RuntimeError("the media workers did not start") from None

    async def _keep(self, worker: Worker) -> None:
        """Run `worker`, and run it again whenever it dies."""
        while not self._closing:
            await self._spawn(worker)
            assert worker.process is not None
            code = await worker.process.wait()
            worker.port = None
            worker.ready.clear()
            if self._closing:
                return
            worker.restarts += 1
            logger.error("media worker %d exited (%s); starting it again", worker.index, code)
            for callback in self.on_exit:
                callback(worker)
            await asyncio.sleep(RESTART_DELAY)

    async def _spawn(self, worker: Worker) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.worker",
            str(self._settings_file),
            str(worker.index),
            # never written: the worker stops when it reads the end of it, which is
            # when this process is gone, even killed with SIGKILL
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the front, which stops the workers
        )
        worker.process = process
        assert process.stdout is not None
        while True:
            line = (await process.stdout.readline()).decode(errors="replace")
            if not line:
                return  # it died before it was ready: _keep starts it again
            if line.startswith(READY):
                worker.port = int(line[len(READY) :].strip())
                worker.generation += 1
                worker.ready.set()
                logger.info("media worker %d ready on port %d", worker.index, worker.port)
                break
        drain = asyncio.ensure_future(self._drain(process))
        self._drains.add(drain)
        drain.add_done_callback(self._drains.discard)

    @staticmethod
    async def _drain(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    async def close(self) -> None:
        """Stop every worker: SIGTERM (each finishes its recordings), then SIGKILL."""
        self._closing = True
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.terminate()
        for worker in self.workers:
            if worker.process is not None:
                try:
                    await asyncio.wait_for(worker.process.wait(), 8.0)
                except TimeoutError:
                    worker.process.kill()
                    await worker.process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._settings_file.unlink(missing_ok=True)
