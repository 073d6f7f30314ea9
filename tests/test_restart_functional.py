"""The real server (`zhuandi serve`: a front process and its media workers) killed
with SIGKILL mid-lesson and started again: a classroom page and `zhuandi classroom`
come back by themselves, the page without a new load and the CLI in the same
process. And a front process killed alone leaves no media worker behind."""

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from bench.procstat import process_tree
from server.tokens import Tokens, load_or_create_secret
from tests.browser import chromium, frames_grow, open_page, wait_for_state, wait_until_playing
from tests.cli import Cli
from tests.coturn import free_port
from tests.media_probe import undamaged_frames
from tests.peers import Teacher

ROOT = Path(__file__).resolve().parent.parent
LESSON = "restart"


class ServerProcess:
    """`zhuandi serve` on loopback with its default media workers."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, data: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.tokens = Tokens(load_or_create_secret(data))

    @classmethod
    async def start(cls, port: int, data: Path) -> "ServerProcess":
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--ice-address", "127.0.0.1", "--data-dir", str(data),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            async with asyncio.timeout(40):
                while b"media worker" not in await process.stdout.readline():
                    pass
        except BaseException:
            process.kill()
            await process.wait()
            raise
        return cls(process, port, data)

    def page(self, role: str, name: str) -> str:
        token = self.tokens.issue(LESSON, role, name, 600)
        return f"{self.url}/lesson/{LESSON}/{role}?token={token}"

    def processes(self) -> list[int]:
        return process_tree(self.process.pid)

    async def kill(self, tree: bool = True) -> list[int]:
        """SIGKILL the front process, and with `tree` its workers too (as the OOM
        killer or `systemctl kill -s KILL` would); the pids it had."""
        pids = self.processes()
        for pid in pids if tree else [self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self.process.wait()
        return pids

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                await self.kill()


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def wait_lines(cli: Cli, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sum(text in line for line in cli.lines) < count:
        assert time.monotonic() < deadline, f"no {count} lines with {text!r}:\n{cli.stdout}"
        await asyncio.sleep(0.1)


@pytest.mark.browser
@pytest.mark.timeout(180)
async def test_after_kill_9_and_a_restart_a_classroom_page_and_the_cli_come_back(
    tmp_path: Path,
) -> None:
    port, data = free_port(), tmp_path / "var"
    out = tmp_path / "cli.mkv"
    server = await ServerProcess.start(port, data)
    teacher_url = server.page("teacher", "王老师")
    teacher_token = teacher_url.split("token=")[1]
    teacher = Teacher(server.url, teacher_token)
    cli = Cli(server.page("classroom", "村小 CLI"), "--record", str(out))
    try:
        await teacher.join()
        await teacher.publish()
        async with chromium() as browser:
            page, log = await open_page(browser, server.page("classroom", "村小"))
            await wait_for_state(page, "live")
            await wait_until_playing(page)
            await page.evaluate("window.__sameDocument = 'loaded once'")
            await cli.start()
            await wait_lines(cli, "live", 1, 20)
            await asyncio.sleep(2)

            killed = await server.kill()  # mid-lesson, no goodbye to anyone
            await teacher.close(leave=False)
            await wait_for_state(page, "reconnecting", timeout=15)
            await wait_lines(cli, "reconnecting", 1, 15)
            assert not any(running(pid) for pid in killed)

            server = await ServerProcess.start(port, data)  # same port and data
            teacher = Teacher(server.url, teacher_token, first=5000)
            await teacher.join()
            await teacher.publish()
            await wait_for_state(page, "live", timeout=40)
            presented, decoded = await frames_grow(page, seconds=2.0)
            marker = await page.evaluate("window.__sameDocument")
            await wait_lines(cli, "live", 2, 40)
            await asyncio.sleep(3)
            cli.signal(signal.SIGINT)
            assert await cli.wait() == 0, cli.stdout + cli.stderr
            # Chromium logs each attempt made while the server was down
            problems = [p for p in log.problems() if "ERR_CONNECTION_REFUSED" not in p]
            sockets = len(log.sockets)
    finally:
        await cli.kill()
        await teacher.close()
        await server.stop()

    assert presented >= 20 and decoded >= 20, (presented, decoded)
    assert marker == "loaded once", "the page was loaded again"
    assert sockets >= 2
    assert problems == []
    assert sum("joined lesson" in line for line in cli.lines) >= 2, cli.stdout
    numbers = [number for number, _ in undamaged_frames(out)]
    assert numbers == sorted(numbers), "the recording went back in time"
    before = [n for n in numbers if n < 5000]
    after = [n for n in numbers if n >= 5000]  # the teacher after the restart
    assert len(before) >= 45 and len(after) >= 45, (len(before), len(after))


@pytest.mark.timeout(60)
async def test_a_front_process_killed_alone_leaves_no_media_worker_running(
    tmp_path: Path,
) -> None:
    server = await ServerProcess.start(free_port(), tmp_path / "var")
    pids = server.processes()
    workers = [pid for pid in pids if pid != server.process.pid]
    try:
        assert workers, "no media worker"
        await server.kill(tree=False)
        deadline = time.monotonic() + 15
        while any(running(pid) for pid in workers):
            assert time.monotonic() < deadline, "media workers outlived their front process"
            await asyncio.sleep(0.1)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
