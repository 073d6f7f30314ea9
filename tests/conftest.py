"""Shared fixtures: a real server on a random loopback port, and a guard that turns
stray asyncio errors ("Task exception was never retrieved") into test failures."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from config import Settings, load_settings
from server.app import create_app
from server.keys import LESSONS, TOKENS
from server.lessons import Lessons
from server.tokens import Tokens


@dataclass
class RunningServer:
    url: str
    app: web.Application
    settings: Settings

    @property
    def tokens(self) -> Tokens:
        return self.app[TOKENS]

    @property
    def lessons(self) -> Lessons:
        return self.app[LESSONS]

    def token(self, lesson: str, role: str, name: str | None = None, ttl: float = 3600) -> str:
        return self.tokens.issue(lesson, role, name or role, ttl)

    def page(self, lesson: str, role: str, name: str | None = None) -> str:
        return f"{self.url}/lesson/{lesson}/{role}?token={self.token(lesson, role, name)}"


def make_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": 0, "data_dir": str(tmp_path / "var"), "workers": 0},
        "media": {"ice_addresses": ["127.0.0.1"]},
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(None, {}, overrides)


async def start_server(settings: Settings) -> tuple[web.AppRunner, RunningServer]:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, RunningServer(f"http://127.0.0.1:{port}", app, settings)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    runner, running = await start_server(make_settings(tmp_path))
    try:
        yield running
    finally:
        await runner.cleanup()


@pytest.fixture(autouse=True)
async def stray_task_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail a test whose event loop reported an unhandled exception."""
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(context)
        logging.getLogger("tests").error(
            "asyncio: %s", context.get("message"), exc_info=context.get("exception")
        )

    loop.set_exception_handler(handler)
    yield errors
    gc.collect()  # "never retrieved" is reported when the task is collected
    await asyncio.sleep(0)
    messages = [f"{c.get('message')}: {c.get('exception')!r}" for c in errors]
    assert not messages, f"unhandled asyncio errors: {messages}"
