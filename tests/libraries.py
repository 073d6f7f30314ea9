"""Data directories with processed library lessons, made through the real CLI
(`zhuandi library reprocess` and `set`), for the library's server and browser tests."""

import asyncio
import contextlib
import dataclasses
import gc
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from config.settings import ServerSettings
from server.cli import main
from tests.archives import Part, make_archive
from tests.conftest import RunningServer, make_settings, start_server

ROOT = Path(__file__).resolve().parent.parent


def zhuandi(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the `zhuandi` command as its own process (`python -m server.cli`)."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def zhuandi_here(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command run in this process: the same code and output, without
    starting an interpreter each time (the jobs it starts are still processes)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["zhuandi", *args], code, out.getvalue(), err.getvalue())


def prepare_library(data_dir: Path, lessons: dict[str, tuple[list[Part], dict[str, str]]]) -> Path:
    """Archives for `lessons` (id -> parts, metadata for `library set`), processed."""
    for lesson_id, (parts, _) in lessons.items():
        make_archive(data_dir / "recordings" / lesson_id, parts, lesson=lesson_id)
    done = zhuandi_here("library", "reprocess", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    for lesson_id, (_, metadata) in lessons.items():
        flags = [f"--{name}={value}" for name, value in metadata.items()]
        done = zhuandi_here("library", "set", lesson_id, "--data-dir", str(data_dir), *flags)
        assert done.returncode == 0, done.stderr
    return data_dir


def copy_data(source: Path, target: Path) -> Path:
    """A copy of a data directory for a test that changes it."""
    # The in-process CLI (zhuandi_here) leaves SQLite connections for the garbage
    # collector; one closed during the copy would delete the WAL files being copied.
    gc.collect()
    shutil.copytree(source, target, symlinks=True)
    return target


# Three processed lessons with metadata, for the search, access and CLI tests.
CATALOG = {
    "alg1": (
        [Part(3.0)],
        {
            "title": "一元一次方程",
            "subject": "数学",
            "grade": "七年级",
            "teacher": "王老师",
            "school": "城关中学",
            "date": "2026-03-02",
            "tags": "代数,方程",
            "visibility": "public",
        },
    ),
    "poem1": (
        [Part(2.0)],
        {
            "title": "静夜思",
            "subject": "语文",
            "grade": "二年级",
            "teacher": "李老师",
            "school": "希望小学",
            "date": "2026-03-05",
            "tags": "古诗",
        },
    ),
    "secret1": (
        [Part(2.0)],
        {
            "title": "教研课",
            "subject": "数学",
            "grade": "八年级",
            "teacher": "王老师",
            "school": "城关中学",
            "date": "2026-04-01",
            "visibility": "private",
        },
    ),
}


def prepare_catalog(root: Path) -> Path:
    """`root/var`: the CATALOG's lessons, processed; returns `root` (make_settings' arg)."""
    prepare_library(root / "var", CATALOG)
    (root / "var" / "secret.key").write_text("s" * 64 + "\n")
    return root


async def library_server(root: Path, **library: Any) -> tuple[web.AppRunner, RunningServer]:
    """A server on `root`'s data directory, processing at once."""
    settings = make_settings(root, library={"process_delay": 0, **library})
    runner, server = await start_server(settings)
    return runner, server


async def get(url: str, **kwargs: Any) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status, await response.read(), dict(response.headers)


async def get_json(url: str, **kwargs: Any) -> tuple[int, Any]:
    status, body, _ = await get(url, **kwargs)
    return status, json.loads(body)


async def wait_ready(server: RunningServer, lesson: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = await get_json(f"{server.url}/api/library/{lesson}")
        if status == 200 and body["state"] == "ready":
            return dict(body)
        assert status in (200, 404), body
        assert status != 200 or body["state"] != "failed", body
        await asyncio.sleep(0.2)
    raise AssertionError(f"lesson {lesson} never became ready: {body}")


def ids(body: dict[str, Any]) -> list[str]:
    """The lesson ids of a GET /api/library answer."""
    return [lesson["id"] for lesson in body["lessons"]]


def closing_at_once() -> dict[str, Any]:
    """[server] settings under which an empty lesson closes at once. A grace that
    keeps a dropped peer's seat, where the server has one, would hold the lesson,
    and so its library job, open that long."""
    names = {f.name for f in dataclasses.fields(ServerSettings)}
    return {"reconnect_grace": 0.5} if "reconnect_grace" in names else {}
