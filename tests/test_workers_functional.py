"""Lessons spread over media worker processes; a worker that dies comes back, and
its lesson with it."""

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.tokens import Tokens, load_or_create_secret
from tests.cli import Cli
from tests.peers import Classroom, SignallingClient, Teacher
from tests.test_cli_functional import free_port

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parent.parent


class Front:
    def __init__(self, process: asyncio.subprocess.Process, url: str, data: Path) -> None:
        self.process = process
        self.url = url
        self.tokens = Tokens(load_or_create_secret(data))

    def token(self, lesson: str, role: str, name: str | None = None) -> str:
        return self.tokens.issue(lesson, role, name or role, 600)

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            async with http.get(self.url + "/healthz") as response:
                result: dict[str, Any] = await response.json()
                return result


@contextlib.asynccontextmanager
async def start_front(tmp_path: Path, **env: str) -> AsyncIterator[Front]:
    port = free_port()
    data = tmp_path / "var"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--ice-address", "127.0.0.1", "--data-dir", str(data),
        "--workers", "2", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "ZHUANDI_SERVER_RECONNECT_GRACE": "30", **env},
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            while b"media worker" not in await process.stdout.readline():
                pass
        yield Front(process, f"http://127.0.0.1:{port}", data)
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    async with start_front(tmp_path) as started:
        yield started


async def wait_until(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def test_lessons_go_to_different_workers_and_survive_one_dying(front: Front) -> None:
    teacher_a = Teacher(front.url, front.token("a", "teacher"))
    teacher_b = Teacher(front.url, front.token("b", "teacher"), first=5000)
    room_b = Classroom(front.url, front.token("b", "classroom"))
    cli = await Cli(f"{front.url}/lesson/a/classroom?token={front.token('a', 'classroom')}").start()
    try:
        for teacher in (teacher_a, teacher_b):
            await teacher.join()
            await teacher.publish()
        await room_b.join()
        await room_b.subscribe()
        await cli.wait_line("live")
        await room_b.wait_frames(30)

        health = await front.health()
        assert [w.get("lessons") for w in health["workers"]] == [1, 1], health
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": "Bearer " + front.token("*", "observer")}
            async with http.get(front.url + "/api/live", headers=headers) as response:
                live = sorted(lesson["lesson"] for lesson in (await response.json())["lessons"])
            async with http.get(front.url + "/metrics") as response:
                metrics = await response.text()
        assert live == ["a", "b"]
        forwarded = [
            ln for ln in metrics.splitlines() if ln.startswith("zhuandi_forwarded_packets")
        ]
        assert forwarded and float(forwarded[0].split()[1]) > 0

        # the worker holding lesson a dies
        victim = next(w for w in health["workers"] if "a" in w["placed"])
        os.kill(victim["pid"], signal.SIGKILL)
        await cli.wait_line("reconnecting")
        b_before = len(room_b.numbers)
        # lesson a's teacher page reconnects (as the page does by itself)
        await teacher_a.close(leave=False)
        teacher_a = Teacher(front.url, teacher_a.token, first=9000)
        await teacher_a.join()
        await teacher_a.publish()
        deadline = time.monotonic() + 40
        while sum("live" in line for line in cli.lines) < 2:
            assert time.monotonic() < deadline, cli.stdout
            await asyncio.sleep(0.2)

        async def restarted() -> bool:
            workers = (await front.health())["workers"]
            return sum(w["restarts"] for w in workers) == 1 and all(w["alive"] for w in workers)

        await wait_until(restarted, "the dead worker did not come back")
        assert len(room_b.numbers) > b_before + 30, "lesson b stopped when another worker died"
    finally:
        cli.signal(signal.SIGINT)
        await cli.wait()
        await cli.kill()
        for peer in (teacher_a, teacher_b, room_b):
            await peer.close()


async def test_more_sockets_than_a_connection_pool_holds_all_reach_their_worker(
    tmp_path: Path,
) -> None:
    """Every signalling socket is a connection from the front to a worker: 130
    classrooms in one lesson all join (aiohttp's client pool holds 100 by default),
    and /metrics still answers while they stay."""
    count = 130
    async with start_front(tmp_path, ZHUANDI_SERVER_MAX_PEERS_PER_LESSON=str(count + 1)) as front:
        rooms = [SignallingClient(front.url) for _ in range(count)]
        try:
            for index, room in enumerate(rooms):
                await room.connect()
                await room.send(
                    {"type": "join", "token": front.token("big", "classroom", f"c-{index}")}
                )
            for room in rooms:
                await room.wait_for("joined", timeout=20)
            async with aiohttp.ClientSession() as http:
                async with http.get(front.url + "/metrics") as response:
                    text = await response.text()
            assert f'zhuandi_peers{{role="classroom"}} {float(count)}' in text, text[:2000]
        finally:
            await asyncio.gather(*(room.close() for room in rooms), return_exceptions=True)
