"""A county for tests: a server whose clock the test moves, a directory of
schools, classrooms and teachers, administrators, and an HTTP client that logs
in like a browser (cookie, CSRF token from the page)."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from server.app import create_app
from server.clock import ManualClock
from server.county import County
from server.keys import COUNTY
from server.timetable import LessonPlan, Occurrence
from tests.conftest import RunningServer, make_settings

ZONE = ZoneInfo("Asia/Shanghai")
# Monday 2 March 2026, 07:50 in Beijing: ten minutes before the first lesson
MORNING = datetime(2026, 3, 2, 7, 50, tzinfo=ZONE).timestamp()
PASSWORD = "correct horse battery"


@dataclass
class CountyServer(RunningServer):
    clock: ManualClock

    @property
    def county(self) -> County:
        return self.app[COUNTY]

    def local(self, when: float) -> datetime:
        return datetime.fromtimestamp(when, ZONE)

    def schedule(
        self,
        starts_in: float,
        minutes: float,
        host: str = "town-301",
        receivers: tuple[str, ...] = ("east-1", "west-1"),
        teacher: str = "wang",
        title: str = "三年级音乐",
    ) -> Occurrence:
        """A lesson starting `starts_in` seconds from the server's now (to the minute)."""
        start = self.local(self.clock.now() + starts_in).replace(second=0, microsecond=0)
        end = start + timedelta(minutes=minutes)
        plan = LessonPlan(
            title=title,
            subject="音乐",
            grade="三年级",
            teacher=teacher,
            host=host,
            receivers=receivers,
            day=start.date(),
            start=start.time(),
            end=time(end.hour, end.minute),
        )
        return self.county.timetable.add([plan], self.clock.now())[0]

    def device_url(self, classroom: str) -> str:
        token = self.county.directory.issue_token(classroom, self.clock.now(), rotate=True)
        return f"{self.url}/room/{classroom}?device={token}"


def seed(county: County) -> None:
    """A town school with two 主讲 classrooms and two teachers, two village schools
    with a receiving classroom each, subjects, and one administrator of each kind."""
    directory = county.directory
    directory.add_school("town", "城关小学")
    directory.add_school("east", "东村小学")
    directory.add_school("west", "西村教学点")
    directory.add_classroom("town-301", "town", "城关小学 301")
    directory.add_classroom("town-302", "town", "城关小学 302")
    directory.add_classroom("east-1", "east", "东村小学 一班")
    directory.add_classroom("west-1", "west", "西村教学点")
    directory.add_teacher("wang", "town", "王老师")
    directory.add_teacher("li", "town", "李老师")
    for subject in ("音乐", "美术", "英语"):
        directory.add_subject(subject)
    county.admins.add("county", "county", None, PASSWORD, 0)
    county.admins.add("east-admin", "school", "east", PASSWORD, 0)
    county.admins.add("town-admin", "school", "town", PASSWORD, 0)


@asynccontextmanager
async def county_server(
    tmp_path: Path, start: float = MORNING, running: bool = True, **sections: dict[str, Any]
) -> AsyncIterator[CountyServer]:
    sections.setdefault("library", {}).setdefault("process_after_lesson", False)
    settings = make_settings(tmp_path, **sections)
    clock = ManualClock(start, running=running)
    app = create_app(settings, clock=clock)
    seed(app[COUNTY])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield CountyServer(f"http://127.0.0.1:{port}", app, settings, clock)
    finally:
        await runner.cleanup()


CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NONCE = re.compile(r'name="nonce" value="([^"]+)"')


class Browser:
    """An administrator's browser: cookies, the page's CSRF token, same-origin POSTs."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.session.close()

    async def login(self, login: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        page = await self.session.get(f"{self.base}/admin/login")
        nonce = NONCE.search(await page.text())
        assert nonce is not None
        response = await self.session.post(
            f"{self.base}/admin/login",
            data={"login": login, "password": password, "nonce": nonce.group(1)},
            headers={"Origin": self.base},
            allow_redirects=False,
        )
        await self.get("/admin")
        return response

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(f"{self.base}{path}", allow_redirects=False) as response:
            text = await response.text()
            found = CSRF.search(text)
            if found:
                self.csrf = found.group(1)
            return response.status, text

    async def post(
        self, path: str, data: dict[str, Any] | aiohttp.FormData, csrf: bool = True
    ) -> tuple[int, str]:
        if csrf and isinstance(data, dict):
            data = {**data, "csrf": self.csrf}
        async with self.session.post(
            f"{self.base}{path}", data=data, headers={"Origin": self.base}, allow_redirects=False
        ) as response:
            return response.status, await response.text()
