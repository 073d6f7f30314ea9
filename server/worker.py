"""A media worker process: `python -m server.worker SETTINGS.json INDEX`.

It runs the whole application on an internal port of 127.0.0.1 and tells its front
process the port on stdout; the lessons placed on it are served here."""

import asyncio
import json
import logging
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from config import settings_from_dict
from server.logs import configure_logging
from server.workers import READY


async def run(data: dict[str, Any], index: int) -> None:
    from server.app import create_app

    data["server"].update(
        host="127.0.0.1", port=0, workers=0, tls_cert="", tls_key="", http_redirect_port=0
    )
    settings = settings_from_dict(data)
    configure_logging(settings.server.log_format, settings.server.log_level)
    logging.getLogger(__name__).info("media worker %d starting", index)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.ensure_future(_front_gone(index, stop))
    app = create_app(settings, worker=index)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"{READY}{port}", flush=True)
    try:
        await stop.wait()
    finally:
        watch.cancel()
        async with asyncio.timeout(9.0):
            await runner.cleanup()


async def _front_gone(index: int, stop: asyncio.Event) -> None:
    """Stop when the front process is gone. It holds our stdin, a pipe it never
    writes to: its end closes when it exits, however it exits. (Killed with
    SIGKILL, it would otherwise leave this worker running, holding its lessons,
    while a restarted front starts new workers for them.)"""
    if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        return  # started by hand: nothing to watch
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    logging.getLogger(__name__).warning("media worker %d: the front process is gone", index)
    stop.set()


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(run(data, int(sys.argv[2])))


if __name__ == "__main__":
    main()
