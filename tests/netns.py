"""Rural lines for tests: one network namespace per classroom, behind a veth pair
whose host side is shaped with tbf and whose namespace side loses packets with nft
(see /work/shared/TESTING.md; there is no netem on this kernel).

    with Lines() as lines:
        line = lines.add(rate_bps=300_000, loss_percent=3)
        # the server listens on line.host_address; a classroom runs under
        # line.exec_prefix() (ip netns exec NAME ...)
        line.set_rate(150_000)

Names are unique per process (`zd<pid>n<k>`), subnets are picked among the ones no
interface on this machine uses yet (under a lock, so parallel runs do not collide),
and everything is deleted on the way out, even when a test fails. Namespaces left by
a process that died without cleaning up are swept the next time a `Lines` opens.
"""

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from tests.browser import AUTOPLAY_ALLOWED, BASE_ARGS, CHROMIUM
from tests.conftest import RunningServer, make_settings, start_server

PREFIX = "zd"
SUBNET = "10.201"
LOCK_PATH = "/run/zhuandi-netns.lock"
TBF_LATENCY = "300ms"
_NAME = re.compile(rf"^{PREFIX}(\d+)n(\d+)$")

_counter = 0
_counter_lock = threading.Lock()
_live: set[str] = set()  # namespaces this process created and has not deleted yet


def _run(*args: str, check: bool = True, input: str | None = None) -> str:
    result = subprocess.run(
        list(args), capture_output=True, text=True, input=input, timeout=15, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


def unavailable() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    try:
        _run("ip", "netns", "list")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns` is unavailable: {exc}"
    return None


def skip_unless_available() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)


def burst_bytes(rate_bps: int) -> int:
    """tbf bucket: 10 ms of the line's rate, and never less than two full packets."""
    return max(3000, rate_bps // 8 // 100)


def _tbf(rate_bps: int) -> list[str]:
    return [
        "tbf",
        "rate",
        f"{rate_bps}bit",
        "burst",
        str(burst_bytes(rate_bps)),
        "latency",
        TBF_LATENCY,
    ]


@dataclass
class Line:
    """One classroom's line: a namespace, a veth pair, a rate and a loss."""

    index: int
    namespace: str
    host_if: str
    ns_if: str
    host_address: str
    ns_address: str
    rate_bps: int
    loss_percent: float = 0.0
    uplink_bps: int | None = None

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def set_rate(self, rate_bps: int) -> None:
        """Change the server → classroom rate now (tbf keeps its queue)."""
        _run("tc", "qdisc", "change", "dev", self.host_if, "root", *_tbf(rate_bps))
        self.rate_bps = rate_bps

    def set_uplink(self, rate_bps: int | None) -> None:
        """Shape classroom → server too (inside the namespace), or stop shaping it."""
        if rate_bps is None:
            if self.uplink_bps is not None:
                _run(*self.exec_prefix(), "tc", "qdisc", "del", "dev", self.ns_if, "root")
        else:
            verb = "change" if self.uplink_bps is not None else "add"
            _run(
                *self.exec_prefix(), "tc", "qdisc", verb, "dev", self.ns_if, "root", *_tbf(rate_bps)
            )
        self.uplink_bps = rate_bps

    def set_loss(self, percent: float) -> None:
        """Drop this share of the packets arriving in the namespace (server → classroom).

        nft's numgen gives whole percents; fractions are rounded."""
        whole = round(percent)
        if not 0 <= whole <= 100:
            raise ValueError(f"loss must be 0..100 %, not {percent}")
        rules = ""
        if whole > 0:
            rules = f'    iifname != "lo" numgen random mod 100 < {whole} drop\n'
        script = (
            "table inet zhuandi\n"
            "delete table inet zhuandi\n"
            "table inet zhuandi {\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"{rules}"
            "  }\n"
            "}\n"
        )
        _run(*self.exec_prefix(), "nft", "-f", "-", input=script)
        self.loss_percent = whole

    def set_link(self, up: bool) -> None:
        """Take the classroom's end of the line down (its cable pulled out), or up
        again. Its address, shaping and loss stay as they were."""
        _run("ip", "-n", self.namespace, "link", "set", self.ns_if, "up" if up else "down")

    def delivered_bytes(self) -> int:
        """Bytes the line has carried to the namespace so far (after the shaper,
        before the loss): the host veth's transmit counter."""
        with open(f"/sys/class/net/{self.host_if}/statistics/tx_bytes") as counter:
            return int(counter.read())

    def dropped_by_shaper(self) -> int:
        """Packets tbf dropped (its queue was over `latency`)."""
        out = _run("tc", "-s", "qdisc", "show", "dev", self.host_if)
        match = re.search(r"dropped (\d+)", out)
        return int(match.group(1)) if match else 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _run("ip", "netns", "list").splitlines() if line.strip()]


def sweep_stale() -> list[str]:
    """Delete namespaces (and so their veths) left by test processes that are gone."""
    removed = []
    for name in _namespaces():
        match = _NAME.match(name)
        if match and not _pid_alive(int(match.group(1))) and name not in _live:
            _run("ip", "netns", "del", name, check=False)
            _run("ip", "link", "del", f"{PREFIX}{match.group(1)}h{match.group(2)}", check=False)
            removed.append(name)
    return removed


def _used_subnets() -> set[int]:
    used = set()
    for match in re.finditer(rf"inet {re.escape(SUBNET)}\.(\d+)\.", _run("ip", "-o", "addr")):
        used.add(int(match.group(1)))
    for match in re.finditer(rf"^{re.escape(SUBNET)}\.(\d+)\.", _run("ip", "route"), re.M):
        used.add(int(match.group(1)))
    return used


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    with open(LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _delete(namespace: str, host_if: str) -> None:
    _run("ip", "netns", "del", namespace, check=False)
    _run("ip", "link", "del", host_if, check=False)  # gone with the namespace, normally
    _live.discard(namespace)


def _delete_all_live() -> None:
    for name in list(_live):
        match = _NAME.match(name)
        if match:
            _delete(name, f"{PREFIX}{match.group(1)}h{match.group(2)}")


atexit.register(_delete_all_live)


class Lines:
    """Creates lines and deletes every one of them on close (a context manager)."""

    def __init__(self) -> None:
        self.lines: list[Line] = []

    def __enter__(self) -> "Lines":
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        with _machine_lock():
            sweep_stale()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def add(self, rate_bps: int, loss_percent: float = 0.0, uplink_bps: int | None = None) -> Line:
        global _counter
        with _counter_lock:
            _counter += 1
            k = _counter
        pid = os.getpid()
        namespace = f"{PREFIX}{pid}n{k}"
        host_if, ns_if = f"{PREFIX}{pid}h{k}", f"{PREFIX}{pid}c{k}"
        assert len(host_if) <= 15 and len(ns_if) <= 15, (host_if, ns_if)
        with _machine_lock():
            used = _used_subnets()
            free = [n for n in range(1, 255) if n not in used]
            if not free:
                raise RuntimeError(f"no free {SUBNET}.N.0/24 subnet left")
            n = free[0]
            _live.add(namespace)
            line = Line(
                index=n,
                namespace=namespace,
                host_if=host_if,
                ns_if=ns_if,
                host_address=f"{SUBNET}.{n}.1",
                ns_address=f"{SUBNET}.{n}.2",
                rate_bps=rate_bps,
            )
            self.lines.append(line)
            try:
                _run("ip", "netns", "add", namespace)
                _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
                _run("ip", "link", "set", ns_if, "netns", namespace)
                # IPv4 only: an IPv6 link-local address that finishes its duplicate
                # detection a second later is a network change to Chromium, which
                # then fails a page's loads with ERR_NETWORK_CHANGED
                # (written to /proc: sysctl may not be installed)
                _run(
                    "ip", "netns", "exec", namespace, "sh", "-c",
                    "for k in all default; do"
                    " echo 1 > /proc/sys/net/ipv6/conf/$k/disable_ipv6; done",
                )  # fmt: skip
                _run("ip", "addr", "add", f"{line.host_address}/24", "dev", host_if)
                _run("ip", "link", "set", host_if, "up")
                _run("ip", "-n", namespace, "addr", "add", f"{line.ns_address}/24", "dev", ns_if)
                _run("ip", "-n", namespace, "link", "set", ns_if, "up")
                _run("ip", "-n", namespace, "link", "set", "lo", "up")
            except BaseException:
                _delete(namespace, host_if)
                self.lines.remove(line)
                raise
        _run("tc", "qdisc", "add", "dev", host_if, "root", *_tbf(rate_bps))
        line.set_loss(loss_percent)
        if uplink_bps is not None:
            line.set_uplink(uplink_bps)
        return line

    @property
    def host_addresses(self) -> list[str]:
        return [line.host_address for line in self.lines]

    def close(self) -> None:
        for line in self.lines:
            _delete(line.namespace, line.host_if)
        self.lines = []


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Lines for one test, all deleted afterwards; the test is skipped (with the
    reason) when this machine cannot make namespaces."""
    skip_unless_available()
    with Lines() as made:
        yield made


@contextlib.asynccontextmanager
async def serve_on_lines(
    tmp_path: Path, lines: Lines, **sections: dict[str, Any]
) -> AsyncIterator[RunningServer]:
    """A real server on loopback and on every line's host address (one port), whose
    ICE candidates are 127.0.0.1 (for the teacher in this process) and those
    addresses (for classrooms in the namespaces). Never on 0.0.0.0."""
    media = {"ice_addresses": ["127.0.0.1", *lines.host_addresses], **sections.pop("media", {})}
    runner, running = await start_server(make_settings(tmp_path, media=media, **sections))
    try:
        port = int(running.url.rsplit(":", 1)[1])
        for address in lines.host_addresses:
            await web.TCPSite(runner, address, port).start()
        yield running
    finally:
        await runner.cleanup()


def url_on(server: RunningServer, line: Line) -> str:
    """The server's URL as a classroom on `line` reaches it."""
    return server.url.replace("127.0.0.1", line.host_address, 1)


@contextlib.asynccontextmanager
async def chromium_on(line: Line, workdir: Path, origin: str) -> AsyncIterator[Browser]:
    """Headless Chromium whose network is `line`'s namespace, through a two-line
    wrapper script (Playwright drives it over a pipe, so control does not care).
    `origin` (http://host:port) is treated as secure, as a page needs for media."""
    wrapper = workdir / f"chromium-{line.namespace}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {line.namespace} {CHROMIUM} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    args = [*BASE_ARGS, AUTOPLAY_ALLOWED, f"--unsafely-treat-insecure-origin-as-secure={origin}"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(wrapper), args=args, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()
