"""A media worker process: `python -m server.worker SETTINGS.json INDEX`.

It runs the whole application on an internal port of 127.0.0.1 and tells its front
process the port on stdout; the lessons placed on it are served here."""

import asyncio
import json
import logging
import signal
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
        async with asyncio.timeout(9.0):
            await runner.cleanup()


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(run(data, int(sys.argv[2])))


if __name__ == "__main__":
    main()
