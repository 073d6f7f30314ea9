"""The event loop a process that carries media runs on (`media.event_loop`).

uvloop's loop (libuv) costs less a datagram than asyncio's selector loop: in the
fan-out benchmark, about a fifth of the CPU a forwarded packet (docs/benchmarks.md).
The media path is the same on both; the fast path finds the socket either way."""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """Run `main` on the loop `name` ("uvloop" or "asyncio") until it returns."""
    if name == "uvloop":
        return uvloop.run(main)
    return asyncio.run(main)
