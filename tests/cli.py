"""`zhuandi classroom …`, the real CLI, in a subprocess for the tests."""

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The real CLI, with one test-only restriction: ICE host candidates on loopback only,
# as the server in these tests offers, so that no check goes to this machine's other
# addresses (../shared/TESTING.md).
CLI = (
    "import sys; from media import adapter; adapter.set_host_addresses(['127.0.0.1']); "
    "from server.cli import main; sys.exit(main())"
)


class Cli:
    """`zhuandi classroom …` in a subprocess, its output read line by line."""

    def __init__(self, *args: str) -> None:
        self.args = ["classroom", *args]
        self.lines: list[str] = []
        self.stderr = ""
        self.returncode: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> "Cli":
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLI,
            *self.args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            self.lines.append(line.decode().rstrip())

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines)

    async def wait_line(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self._process is not None
            if self._process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"no line with {text!r}; output:\n{self.stdout}")
            await asyncio.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        assert self._process is not None
        self._process.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self._process is not None and self._process.stderr is not None
        try:
            stderr = await asyncio.wait_for(self._process.stderr.read(), timeout)
            await asyncio.wait_for(self._process.wait(), timeout)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
            raise
        finally:
            if self._reader is not None:
                await self._reader
        self.stderr = stderr.decode()
        returncode = self._process.returncode
        assert returncode is not None
        self.returncode = returncode
        return returncode

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        if self._reader is not None:
            await self._reader


async def run_cli(*args: str, timeout: float = 30.0) -> Cli:
    cli = await Cli(*args).start()
    try:
        await cli.wait(timeout)
    finally:
        await cli.kill()
    return cli


def recorded_count(cli: Cli) -> int:
    """How many video frames the client says it wrote (its last line)."""
    match = re.search(r"recorded (\d+) video frames", cli.stdout)
    assert match is not None, cli.stdout
    return int(match[1])
