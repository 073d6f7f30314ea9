"""Fire-and-forget coroutines whose failures are logged, never lost."""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)

_running: set["asyncio.Task[Any]"] = set()


def spawn(coroutine: Coroutine[Any, Any, Any], what: str) -> "asyncio.Task[Any]":
    """Run `coroutine` in the background. A closed connection ends it quietly;
    anything unexpected is logged with a traceback. The task is kept referenced."""

    async def run() -> Any:
        try:
            return await coroutine
        except ConnectionError:
            return None
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s failed", what)
            return None

    task = asyncio.ensure_future(run())
    _running.add(task)

    def done(finished: "asyncio.Task[Any]") -> None:
        _running.discard(finished)
        coroutine.close()  # cancelled before it started: it was never awaited

    task.add_done_callback(done)
    return task
