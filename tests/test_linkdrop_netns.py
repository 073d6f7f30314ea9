"""A classroom's line drops for 10 s and comes back: the classroom decodes the
teacher again within 3 s of the link returning, by itself, in the same seat, with
no new page load (Chromium) and in the same process (`zhuandi classroom`).

The classroom runs in a network namespace (tests/netns.py); the outage is its end
of the veth taken down (`ip link set … down`), as a pulled cable or a dead switch
port would. In those 10 s the server gives the media up (RTCP silence, ~6 s) and the
socket (heartbeat, 5 s); the seat waits for its classroom (server.reconnect_grace).
"""

import asyncio
import contextlib
import itertools
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import av
import pytest
from playwright.async_api import Page

from tests.browser import open_page, wait_for_state, wait_until_playing
from tests.conftest import RunningServer
from tests.frames import read_number
from tests.netns import Line, Lines, chromium_on, lines, serve_on_lines, url_on
from tests.peers import Teacher

__all__ = ["lines"]  # the fixture

pytestmark = [pytest.mark.netns]

LESSON = "linkdrop"
OUTAGE = 10.0
BACK_WITHIN = 3.0
PROJECT = Path(__file__).resolve().parent.parent

# The newest open connection of the page and the frames it has decoded.
NEWEST_DECODED = """
async () => {
  const pcs = window.__pcs || [];
  for (let i = pcs.length - 1; i >= 0; i -= 1) {
    const pc = pcs[i];
    if (pc.connectionState === "closed") continue;
    let decoded = 0;
    for (const report of (await pc.getStats()).values()) {
      if (report.type === "inbound-rtp" && report.kind === "video") {
        decoded = report.framesDecoded ?? 0;
      }
    }
    return [i, decoded];
  }
  return [-1, 0];
}
"""


def classroom_seats(server: RunningServer) -> dict[str, str]:
    """Seat key -> state ("connected", "reconnecting", ...) of every classroom seat."""
    lesson = server.lessons.get(LESSON)
    if lesson is None:
        return {}
    seats = {}
    for key, seat in lesson.seats.items():
        if seat.role == "classroom":
            occupant = lesson.occupant(key)
            seats[key] = occupant.media_state if occupant is not None else "reconnecting"
    return seats


async def wait_seats(server: RunningServer, wanted: str, timeout: float = 15.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        seats = classroom_seats(server)
        if seats and all(state == wanted for state in seats.values()):
            return seats
        if time.monotonic() > deadline:
            raise AssertionError(f"classroom seats {seats}, wanted all {wanted}")
        await asyncio.sleep(0.1)


async def start_teacher(server: RunningServer) -> Teacher:
    teacher = Teacher(server.url, server.token(LESSON, "teacher"))
    await teacher.join()
    await teacher.publish()
    await teacher.wait_connected()
    return teacher


async def outage(line: Line, last_moment: Callable[[], Awaitable[None]] | None = None) -> float:
    """Take the line down for OUTAGE seconds (calling `last_moment` just before it
    comes back); the moment it is back."""
    line.set_link(False)
    try:
        await asyncio.sleep(OUTAGE)
        if last_moment is not None:
            await last_moment()
    finally:
        line.set_link(True)
    return time.monotonic()


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_a_chromium_classroom_decodes_again_within_3_s_of_its_line_returning(
    tmp_path: Path, lines: Lines
) -> None:
    line = lines.add(5_000_000)
    async with serve_on_lines(tmp_path, lines) as server:
        teacher = await start_teacher(server)
        origin = url_on(server, line)
        url = origin + server.page(LESSON, "classroom", "村小").removeprefix(server.url)
        try:
            async with chromium_on(line, tmp_path, origin) as browser:
                page, log = await open_page(browser, url)
                await wait_for_state(page, "live")
                await wait_until_playing(page)
                await page.evaluate("window.__sameDocument = 'loaded once'")
                (seat,) = await wait_seats(server, "connected")
                before: list[int] = []

                async def decoded_so_far() -> None:
                    before.extend(await page.evaluate(NEWEST_DECODED))

                back = await outage(line, decoded_so_far)
                decoded_again = await first_decoded_after(page, before, timeout=20)
                took = decoded_again - back

                await asyncio.sleep(2)
                after = await page.evaluate(NEWEST_DECODED)
                pcs = await page.evaluate(
                    "(window.__pcs || []).map((pc) => pc.connectionState).join(' ')"
                )
                marker = await page.evaluate("window.__sameDocument")
                seats = await wait_seats(server, "connected")
                problems = log.problems()
        finally:
            await teacher.close()

    assert took < BACK_WITHIN, f"frames decoded again {took:.2f} s after the link returned"
    assert marker == "loaded once", "the page was loaded again"
    assert list(seats) == [seat], f"not the same seat: {seat} then {list(seats)}"
    assert after[1] >= 30, (
        f"{after[1]} frames decoded in the 2 s after recovering: {pcs}, {log.received[-12:]}"
    )
    assert problems == []


async def first_decoded_after(page: Page, before: list[int], timeout: float) -> float:
    """When the page's newest connection decoded a frame it had not before."""
    deadline = time.monotonic() + timeout
    index, decoded = before
    while time.monotonic() < deadline:
        now_index, now_decoded = await page.evaluate(NEWEST_DECODED)
        if (now_index > index and now_decoded > 0) or (
            now_index == index and now_decoded > decoded
        ):
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"no frame decoded within {timeout} s of the link returning")


# -- zhuandi classroom ------------------------------------------------------------

# The real CLI. Its ICE host candidates are its namespace's address only, so that no
# check goes anywhere else (../shared/TESTING.md).
CLI = (
    "import sys; from media import adapter; adapter.set_host_addresses([sys.argv.pop(1)]); "
    "from server.cli import main; sys.exit(main())"
)


class NamespacedCli:
    """`zhuandi classroom …` inside a line's namespace; its stdout kept line by line."""

    def __init__(self, line: Line, *args: str) -> None:
        self.command = [
            *line.exec_prefix(),
            sys.executable,
            "-c",
            CLI,
            line.ns_address,
            "classroom",
            *args,
        ]
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=PROJECT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_count(self, text: str, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(text) < count:
            assert self.process is not None
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {count} lines with {text!r}:\n{self.output}")
            await asyncio.sleep(0.05)

    async def stop(self) -> int | None:
        """SIGINT (it leaves and finishes its recording), then SIGKILL if it hangs."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            await self._reader
        return process.returncode


def recorded_frames(path: Path) -> list[tuple[float, int]]:
    """(file time in seconds, number) of every frame of the recording that decodes
    and carries a readable number."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            number = read_number(frame)
            if number is not None and frame.time is not None:
                frames.append((float(frame.time), number))
    return frames


@pytest.mark.timeout(120)
async def test_the_cli_in_a_namespace_receives_again_within_3_s_of_its_line_returning(
    tmp_path: Path, lines: Lines
) -> None:
    line = lines.add(5_000_000)
    out = tmp_path / "classroom.mkv"
    async with serve_on_lines(tmp_path, lines) as server:
        teacher = await start_teacher(server)
        url = url_on(server, line) + server.page(LESSON, "classroom", "村小").removeprefix(
            server.url
        )
        cli = NamespacedCli(line, url, "--record", str(out))
        try:
            await cli.start()
            await cli.wait_count("live", 1)
            (seat,) = await wait_seats(server, "connected")
            await asyncio.sleep(3)
            down = time.monotonic()
            back = await outage(line)
            await cli.wait_count("live", 2, timeout=20)
            seats = await wait_seats(server, "connected")
            await asyncio.sleep(3)
            pid = cli.process.pid if cli.process else None
            returncode = await cli.stop()
        finally:
            await cli.stop()
            await teacher.close()
        sent_at = dict(teacher.video.sent_at)

    assert returncode == 0, cli.output
    assert cli.count("joined lesson") == 2, cli.output  # one process, two joins
    assert pid is not None
    assert list(seats) == [seat], f"not the same seat: {seat} then {list(seats)}"
    frames = recorded_frames(out)
    # The recording places frames by their arrival; calibrate its clock against the
    # teacher's send times of the frames before the outage (a few ms of latency).
    before = [(t, n) for t, n in frames if n in sent_at and sent_at[n] < down - 0.5]
    assert len(before) > 30, f"{len(before)} frames before the outage"
    offset = statistics.median(sent_at[n] - t for t, n in before)
    arrivals = [(t + offset, n) for t, n in frames]
    resumed = [(at, n) for at, n in arrivals if at > back - 0.5]
    assert resumed, "no frame recorded after the link returned"
    took = resumed[0][0] - back
    assert took < BACK_WITHIN, f"frames came again {took:.2f} s after the link returned"
    steps = [b[1] - a[1] for a, b in itertools.pairwise(resumed)]
    assert len(resumed) >= 60 and all(step >= 0 for step in steps), "frames out of order"
