"""The one-touch classroom PC in Chromium: opened before the lesson, it counts
down, checks its line, joins by itself when the lesson opens (the 主讲 classroom's
page starts teaching by itself), records from the start time, and leaves at the
end. The server's clock is moved by the test; nothing waits real minutes."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from recorder.archive import MANIFEST
from server.keys import LIBRARY
from tests.browser import chromium, open_page, wait_until_playing
from tests.county import county_server

pytestmark = pytest.mark.browser


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 20
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.2)


async def shown_state(page: object) -> str | None:
    return await page.get_attribute("#status", "data-state")  # type: ignore[attr-defined]


@pytest.mark.timeout(120)
async def test_a_kiosk_counts_down_joins_at_the_start_records_and_leaves_at_the_end(
    tmp_path: Path,
) -> None:
    async with county_server(tmp_path, timetable={"open_early": 0.5, "room_poll": 1.0}) as server:
        lesson = server.schedule(starts_in=60, minutes=40, receivers=("east-1",))
        teacher_url = server.device_url("town-301")
        classroom_url = server.device_url("east-1")
        county = server.county
        async with chromium() as browser:
            teacher, teacher_log = await open_page(browser, teacher_url)
            classroom, classroom_log = await open_page(browser, classroom_url)

            # before the lesson: the timetable and a countdown by the server's clock
            assert await shown_state(classroom) == "countdown"
            assert lesson.title in await classroom.inner_text("#today")
            countdown = await classroom.inner_text("#countdown")
            assert countdown.startswith("01:") or countdown.startswith("00:5"), countdown
            # the line is checked by itself before the lesson, and kept
            await eventually(lambda: county.checks.latest("east-1") is not None, "a line check")
            check = county.checks.latest("east-1")
            assert check is not None and check.down_bps > 1e6 and check.loss is not None
            await classroom.wait_for_selector("#check-result[data-verdict]:not([data-verdict=''])")

            # the lesson opens 30 s early: both pages join by themselves, no recording yet
            server.clock.advance(lesson.starts - 20 - server.clock.now())
            await classroom.wait_for_selector("#video", timeout=15_000)
            shown = await wait_until_playing(classroom, "#video", timeout=30)
            assert shown["videoWidth"] > 0
            live = server.lessons.get(lesson.lesson)
            assert live is not None and live.live
            assert live.recording is None, "the sound check is not recorded"

            # the start time: recording starts
            server.clock.advance(lesson.starts + 1 - server.clock.now())
            await eventually(lambda: live.recording is not None, "recording at the start")

            # the classroom's browser restarts: the same URL takes the same seat again
            await classroom.context.close()
            classroom, classroom_log = await open_page(browser, classroom_url)
            await wait_until_playing(classroom, "#video", timeout=30)
            seats = [key for key, seat in live.seats.items() if seat.role == "classroom"]
            assert seats == ["c-room-east-1"]

            # the end: everyone leaves, the recording closes, the pages go back
            server.clock.advance(lesson.ends + 1 - server.clock.now())
            await eventually(
                lambda: server.lessons.get(lesson.lesson) is None, "the lesson closing"
            )
            for page in (classroom, teacher):
                await page.wait_for_selector('#status[data-state="idle"]', timeout=15_000)
            assert "已结束" in await classroom.inner_text("#today")

            assert not classroom_log.problems(), classroom_log.problems()
            assert not teacher_log.problems(), teacher_log.problems()

        # the recording is in the library under the timetable's title; a replay counts
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/library/{lesson.lesson}") as response:
                assert response.status == 200
        assert [view for view, _ in county.views.between(0, 2e10)] == [lesson.lesson]
        archive = server.settings.data_path / "recordings" / lesson.lesson
        assert (archive / MANIFEST).is_file()
        entry = server.app[LIBRARY].repository.get(lesson.lesson)
        assert entry is not None and entry.title == lesson.title and entry.school == "城关小学"
        present = [
            i
            for i in county.attendance.intervals([lesson.lesson])
            if i.kind == "present" and i.classroom == "east-1"
        ]
        assert present and present[-1].end >= lesson.ends
