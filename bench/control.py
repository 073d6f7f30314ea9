"""The line protocol between the bench and its child processes: a child writes one
JSON object a line on stdout and reads commands ("stats", "quit") on stdin."""

import asyncio
import json
import sys
from typing import Any


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def commands(reader: asyncio.StreamReader) -> Any:
    """Yield commands until "quit" or the end of stdin (the bench went away)."""
    while True:
        line = await reader.readline()
        command = line.decode().strip()
        if not line or command == "quit":
            return
        if command:
            yield command
