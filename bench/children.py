"""The bench's child processes: started in their own process group, with bounded
waits, and always stopped, even when the bench fails or is interrupted."""

import asyncio
import atexit
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

_alive: set[int] = set()


def _kill_leftovers() -> None:
    """Last resort at interpreter exit: SIGKILL the children still running (checked
    to be ours: a group leader running one of the bench's modules)."""
    for pid in list(_alive):
        _alive.discard(pid)
        try:
            ours = os.getpgid(pid) == pid and b"-m\x00" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ProcessLookupError):
            continue
        if ours:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


atexit.register(_kill_leftovers)


class ChildError(RuntimeError):
    """A child process failed, answered wrongly, or did not answer in time."""


class Child:
    """One child process. With `talk`, its stdin and stdout carry bench.control's
    line protocol; otherwise its output goes to its log file."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls,
        name: str,
        args: list[str],
        logs: Path,
        *,
        talk: bool,
        env: dict[str, str] | None = None,
    ) -> "Child":
        log = logs / f"{name}.log"
        with log.open("ab") as handle:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                cwd=REPO,
                env={**os.environ, **(env or {})},
                stdin=asyncio.subprocess.PIPE if talk else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if talk else handle,
                stderr=handle,
                start_new_session=True,  # its own process group, killed as one
            )
        _alive.add(process.pid)
        return cls(name, process, log)

    async def read_event(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the child writes; other lines are skipped."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        raise ChildError(f"{self.name} exited ({self.tail()})")
                    with contextlib.suppress(ValueError):
                        data = json.loads(line)
                        if isinstance(data, dict):
                            return data
        except TimeoutError:
            raise ChildError(f"{self.name} said nothing for {timeout:.0f} s") from None

    async def ask(self, command: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return await self.read_event(timeout)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "no log"
        return "\n".join(text[-lines:]) or "empty log"

    async def stop(self, grace: float = 8.0) -> None:
        """Ask politely ("quit" on stdin, then SIGTERM), then SIGKILL the group."""
        process = self.process
        if process.returncode is None and process.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                process.stdin.write(b"quit\n")
                await process.stdin.drain()
                process.stdin.close()
        elif process.returncode is None:
            self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await asyncio.wait_for(process.wait(), 5.0)
        _alive.discard(process.pid)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


async def stop_all(children: list[Child]) -> None:
    await asyncio.gather(*(child.stop() for child in children), return_exceptions=True)
    children.clear()
