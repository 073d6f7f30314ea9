"""Attendance and statistics after a scripted lesson on a stopped clock: the 主讲
classroom and two receiving classrooms join through their kiosk links, one leaves
early, a hand goes up and a classroom is brought on stage, the timetable ends the
lesson; a second lesson nobody comes to is not held. The 开课率, the minutes and
the CSV must say exactly that."""

import asyncio
import csv
import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.attendance import Interval
from tests.county import ZONE, Browser, CountyServer, county_server
from tests.peers import Classroom, Teacher


def at(hour: int, minute: int) -> float:
    return datetime(2026, 3, 2, hour, minute, tzinfo=ZONE).timestamp()


async def kiosk_join(server: CountyServer, classroom: str) -> str:
    """The join link a classroom's kiosk gets for its lesson open now."""
    url = server.device_url(classroom)
    token = url.split("device=")[1]
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{server.url}/api/room/{classroom}/join",
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["token"])


async def wait_for_state(peer: Teacher, matches: Callable[[dict[str, Any]], bool]) -> None:
    """Until the teacher's page has been sent a state that `matches`."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        state = await peer.signalling.wait_for("state", timeout=10)
        if matches(state):
            return
        assert asyncio.get_running_loop().time() < deadline, f"no such state: {state}"


def minutes(intervals: list[Interval], classroom: str, kind: str) -> float:
    return (
        sum(i.end - i.start for i in intervals if i.classroom == classroom and i.kind == kind) / 60
    )


@pytest.mark.timeout(90)
async def test_attendance_and_the_figures_follow_what_happened(tmp_path: Path) -> None:
    async with county_server(
        tmp_path, start=at(7, 50), running=False, recorder={"enabled": False}
    ) as server:
        clock = server.clock
        held = server.schedule(starts_in=10 * 60, minutes=40)  # 08:00-08:40, 东村 and 西村
        missed = server.schedule(
            starts_in=70 * 60, minutes=40, host="town-302", receivers=("east-1",), teacher="li"
        )  # 09:00-09:40: nobody comes
        assert server.local(held.starts).strftime("%H:%M") == "08:00"

        # 西村's line check found a slow line: it starts on the lowest layer
        server.county.checks.add("west-1", at(7, 52), 500_000, 200_000, 60.0, 0.0)
        clock.set(at(7, 58))  # open for the sound check
        teacher = Teacher(server.url, await kiosk_join(server, "town-301"))
        east = Classroom(server.url, await kiosk_join(server, "east-1"))
        west = Classroom(server.url, await kiosk_join(server, "west-1"))
        try:
            await teacher.join()
            await teacher.publish()
            await teacher.wait_connected()
            for classroom in (east, west):
                await classroom.join()
                await classroom.subscribe()
            await east.wait_frames(5)
            await west.wait_frames(5)
            lesson = server.lessons.get(held.lesson)
            assert lesson is not None and lesson.live
            starting = {p.seat: p.initial_layer for p in lesson.peers.values()}
            assert starting == {"teacher": 0, "c-room-east-1": 0, "c-room-west-1": 2}

            clock.set(at(8, 5))
            await east.signalling.send({"type": "hand", "up": True})
            seat = "c-room-east-1"
            await wait_for_state(
                teacher,
                lambda state: state.get("hands") == [{"peer": seat, "name": "东村小学 一班"}],
            )
            await teacher.signalling.send({"type": "stage", "peer": seat})
            await wait_for_state(
                teacher, lambda state: (state.get("stage") or {}).get("peer") == seat
            )

            clock.set(at(8, 15))  # 西村 leaves early
            await west.close(leave=True)
            await wait_for_state(teacher, lambda state: len(state.get("classrooms", [])) == 1)

            clock.set(at(8, 40))  # the end: the timetable ends the lesson
            error = await east.signalling.wait_for("error", timeout=10)
            assert error["code"] == "lesson_ended" and error["fatal"]
        finally:
            for peer in (teacher, east, west):
                await peer.close(leave=False)
        assert server.lessons.get(held.lesson) is None

        clock.set(at(10, 0))  # both lessons are over
        county = server.county
        intervals = county.attendance.intervals([held.lesson])
        # joined at 07:58, left at 08:15 or at the end, 08:40
        assert minutes(intervals, "east-1", "present") == 42
        assert minutes(intervals, "west-1", "present") == 17
        assert minutes(intervals, "town-301", "live") == 42
        assert minutes(intervals, "east-1", "layer") == 42
        events = [(e.classroom, e.kind) for e in county.attendance.events([held.lesson])]
        assert ("east-1", "hand_up") in events and ("east-1", "stage_on") in events
        assert ("east-1", "hand_down") in events  # brought on stage, the hand goes down

        browser = Browser(server.url)
        try:
            await browser.login("county")
            query = "from=2026-03-02&to=2026-03-08&period=week"
            status, text = await browser.get(f"/api/stats/rate?{query}")
            assert status == 200, text
            rate = (await _json(browser, f"/api/stats/rate?{query}"))["rows"]
            assert rate == [{"period": "2026-03-02", "scheduled": 2, "held": 1, "rate": 50.0}]

            receivers = (await _json(browser, f"/api/stats/receivers?{query}"))["rows"]
            by_id = {row["classroom"]: row for row in receivers}
            # 东村: both lessons (40 of 80 minutes: the first whole, the second not at all)
            fields = ("lessons", "attended", "scheduled_minutes", "minutes", "rate")
            assert [by_id["east-1"][k] for k in fields] == [2, 1, 80.0, 40.0, 50.0]
            # 西村: 15 of 40 minutes within the lesson's time (it left at 08:15)
            assert (by_id["west-1"]["attended"], by_id["west-1"]["minutes"]) == (0, 15.0)
            assert by_id["west-1"]["rate"] == 37.5

            teachers = (await _json(browser, f"/api/stats/teachers?{query}"))["rows"]
            hours = {row["teacher"]: row for row in teachers}
            assert (hours["wang"]["held"], hours["wang"]["delivered_hours"]) == (1, 0.67)
            assert (hours["li"]["held"], hours["li"]["delivered_hours"]) == (0, 0.0)

            network = (await _json(browser, f"/api/stats/network?{query}"))["rows"]
            shares = {row["classroom"]: row["share_top"] for row in network}
            assert shares["east-1"] == 100.0

            # the CSV says the same, with the catalog's headers
            status, text = await browser.get(f"/admin/stats/receivers.csv?{query}")
            assert status == 200
            rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
            assert rows[0][:3] == ["教室编号", "名称", "学校"]
            east_row = next(r for r in rows if r[0] == "east-1")
            assert east_row[3:] == ["2", "1", "80.0", "40.0", "50.0"]
            status, page = await browser.get("/admin/timetable?week=2026-03-02")
            assert page.count('data-held="true"') == 1 and page.count('data-held="false"') == 1
            status, page = await browser.get(f"/admin/stats?report=rate&{query}")
            assert status == 200 and "<svg" in page and "50" in page
        finally:
            await browser.close()
        assert missed.lesson not in {i.lesson for i in intervals}


async def _json(browser: Browser, path: str) -> dict[str, Any]:
    async with browser.session.get(f"{browser.base}{path}") as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())
