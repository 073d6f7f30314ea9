"""How late the event loop runs a timer, sampled all the time (media/delay.py's
LOOP_LAG, exported by /metrics): what every packet forwarded in this process waits
on top of its own work when the loop is busy."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from media.delay import LOOP_LAG, DelayHistogram

INTERVAL = 0.05  # seconds between samples


async def probe(histogram: DelayHistogram = LOOP_LAG, interval: float = INTERVAL) -> None:
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval)
        histogram.record(max(0.0, loop.time() - start - interval))


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(probe(), name="loop lag probe")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
