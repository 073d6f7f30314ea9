"""CPU time and memory of processes, and of the whole machine, from /proc."""

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all its threads included.
    0 when the process has gone (its time can no longer be read)."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system (kernel) CPU seconds of process `pid`; (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    # The command name (field 2) may hold spaces; fields after it are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def rss_bytes(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[1]) * PAGE


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (e.g. a server and its media workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


@dataclass(frozen=True)
class MachineTimes:
    """Busy and total CPU seconds of the whole machine, all cores summed."""

    busy: float
    total: float


def machine_times() -> MachineTimes:
    line = Path("/proc/stat").read_text().splitlines()[0]
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return MachineTimes((total - idle) / TICK, total / TICK)


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


async def wait_until_idle(max_busy_cores: float, timeout: float, window: float = 5.0) -> float:
    """Wait until the whole machine uses under `max_busy_cores` over a `window`, or
    `timeout` passes; the last window's busy cores."""
    deadline = time.monotonic() + timeout
    while True:
        start, began = machine_times(), time.monotonic()
        await asyncio.sleep(window)
        busy = (machine_times().busy - start.busy) / (time.monotonic() - began)
        if busy < max_busy_cores or time.monotonic() >= deadline:
            return busy
