"""The county's side on a real server: device tokens (revoked and rotated ones are
refused), administrator logins (cookies, throttling, CSRF), every administrative
route against every role, school scoping, and the timetable page's CSV import."""

import re
from pathlib import Path

import aiohttp
import pytest

from server.authz import ADMIN_ROUTES, POLICY
from server.stats_report import REPORTS
from tests.county import PASSWORD, Browser, CountyServer, county_server
from tests.test_pages_functional import parse


async def fetch(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            return response.status, await response.text()


@pytest.mark.timeout(30)
async def test_revoked_and_rotated_device_tokens_are_refused(tmp_path: Path) -> None:
    async with county_server(tmp_path) as server:
        server.schedule(starts_in=60, minutes=40)
        server.clock.advance(120)  # the lesson is on
        first = server.device_url("east-1")
        status, page = await fetch(first)
        assert status == 200 and "classroom.js" in page  # the lesson page itself

        second = server.device_url("east-1")  # rotated: the first stops working
        status, page = await fetch(first)
        assert status == 401 and 'data-code="device_invalid"' in page
        assert "classroom.js" not in page and "token=" not in page
        status, _ = await fetch(second)
        assert status == 200

        server.county.directory.revoke_token("east-1")
        token = second.split("device=")[1]
        status, page = await fetch(second)
        assert status == 403 and 'data-code="device_revoked"' in page
        api = f"{server.url}/api/room/east-1"
        for path in ("", "/join", "/check/download?bytes=1000", "/check"):
            status, body = await fetch(api + path, Authorization=f"Bearer {token}")
            assert status == 403 and "device_revoked" in body, path
        # a token is only good for its own classroom
        other = server.device_url("west-1").split("device=")[1]
        status, _ = await fetch(f"{server.url}/room/east-1?device={other}")
        assert status == 401
        status, _ = await fetch(f"{server.url}/room/east-1")
        assert status == 401


@pytest.mark.timeout(30)
async def test_the_room_api_follows_the_server_clock(tmp_path: Path) -> None:
    async with county_server(tmp_path, timetable={"open_early": 5.0}) as server:
        lesson = server.schedule(starts_in=10 * 60, minutes=40, receivers=("west-1",))
        token = server.device_url("west-1").split("device=")[1]
        auth = {"Authorization": f"Bearer {token}"}
        api = f"{server.url}/api/room/west-1"
        async with aiohttp.ClientSession(headers=auth) as session:
            state = await (await session.get(api)).json()
            assert state["lesson"] is None and state["next"]["lesson"] == lesson.lesson
            assert abs(state["now"] / 1000 - server.clock.now()) < 2
            assert state["check_due"]  # a lesson within 15 minutes, no line check yet
            assert (await session.get(f"{api}/join")).status == 409

            server.clock.advance(5 * 60 + 1)  # five minutes before: open
            state = await (await session.get(api)).json()
            assert (state["lesson"], state["role"]) == (lesson.lesson, "classroom")
            joined = await (await session.get(f"{api}/join")).json()
            grant = server.tokens.verify(joined["token"])
            assert grant.lesson == lesson.lesson and grant.role == "classroom"
            assert grant.name == "西村教学点" and grant.expires == lesson.ends

            # the line check's result is kept and chooses the starting layer
            check = {"down_bps": 600_000, "up_bps": 300_000, "rtt_ms": 80, "loss": 0.01}
            result = await (await session.post(f"{api}/check", json=check)).json()
            assert (result["layer"], result["verdict"]) == ("180p", "poor")
            bad = await session.post(f"{api}/check", json={**check, "loss": 7})
            assert bad.status == 400
            assert server.county.checks.starting_layer_of("west-1", server.clock.now()) == 2

            # quality reports from the classroom's page
            report = {"lesson": lesson.lesson, "freezes": 2, "freeze_seconds": 1.5}
            sent = await session.post(f"{api}/report", json={**report, "audio_samples": 48000})
            assert sent.status == 200
            totals = server.county.attendance.quality([lesson.lesson])[(lesson.lesson, "west-1")]
            assert (totals.freezes, totals.freeze_seconds) == (2, 1.5)
            other = await session.post(f"{api}/report", json={**report, "lesson": "nope"})
            assert other.status == 404

            server.clock.advance(lesson.ends - server.clock.now())
            state = await (await session.get(api)).json()
            assert state["lesson"] is None and state["next"] is None


@pytest.mark.timeout(60)
async def test_logins_set_strict_cookies_and_are_throttled(tmp_path: Path) -> None:
    async with county_server(tmp_path) as server:
        browser = Browser(server.url)
        try:
            status, _ = await browser.get("/admin/directory")
            assert status == 303  # to the login page
            response = await browser.login("county")
            cookie = response.headers.getall("Set-Cookie")
            session = next(c for c in cookie if c.startswith("zhuandi_admin="))
            assert "HttpOnly" in session and "SameSite=Strict" in session
            assert "Secure" not in session  # plain http in this test; under TLS it is Secure
            status, page = await browser.get("/admin/directory")
            assert status == 200 and "town-301" in page

            # a change without the page's CSRF token, or from another site, is refused
            add = {"kind": "school", "id": "north", "name": "北村"}
            assert (await browser.post("/admin/schools/add", add, csrf=False))[0] == 403
            async with browser.session.post(
                f"{server.url}/admin/schools/add",
                data={**add, "csrf": browser.csrf},
                headers={"Origin": "http://evil.example"},
            ) as response:
                assert response.status == 403
            assert (await browser.post("/admin/schools/add", add))[0] == 303
            assert server.county.directory.school("north") is not None
        finally:
            await browser.close()

        other = Browser(server.url)
        try:
            for _ in range(5):
                response = await other.login("east-admin", "wrong password")
                assert response.status == 401
            response = await other.login("east-admin", PASSWORD)  # right, but too late
            assert response.status == 429
            assert (await other.get("/admin"))[0] == 303
        finally:
            await other.close()


async def _as(server: CountyServer, login: str | None) -> Browser:
    browser = Browser(server.url)
    if login is not None:
        await browser.login(login)
    return browser


@pytest.mark.timeout(60)
async def test_every_admin_route_checks_the_role_and_the_session(tmp_path: Path) -> None:
    """The authorization matrix: each route registered with admin_route, tried with
    no session, a school administrator and a county administrator."""
    async with county_server(tmp_path) as server:
        routes = server.app[ADMIN_ROUTES]
        assert {r.action for r in routes} == set(POLICY), "a policy entry no route uses"
        for login, role in ((None, None), ("east-admin", "school"), ("county", "county")):
            browser = await _as(server, login)
            try:
                for route in routes:
                    path = route.path.replace("{report}", "rate")
                    if route.method == "GET":
                        status, _ = await browser.get(path)
                    else:
                        status, _ = await browser.post(path, {})
                    if role is None:
                        expected = {303} if route.page and route.method == "GET" else {401, 403}
                        assert status in expected, (route, status)
                    elif role not in POLICY[route.action]:
                        assert status == 403, (route, login, status)
                    else:
                        assert status not in (401, 403), (route, login, status)
            finally:
                await browser.close()


@pytest.mark.timeout(60)
async def test_a_school_administrator_sees_and_changes_only_their_school(tmp_path: Path) -> None:
    async with county_server(tmp_path) as server:
        server.schedule(starts_in=3600, minutes=40)  # town-301 -> east-1, west-1
        server.schedule(starts_in=7200, minutes=40, host="town-302", receivers=("west-1",))
        browser = await _as(server, "east-admin")
        try:
            status, page = await browser.get("/admin/directory")
            shown = re.findall(r'data-classroom="([^"]+)"', page)
            assert shown == ["east-1"]
            status, page = await browser.get("/admin/timetable?week=2026-03-02")
            assert page.count('class="slot"') == 1  # only the lesson east-1 receives
            assert "/admin/timetable/remove" not in page  # hosted by another school
            # another school's classroom: refused
            add = {"kind": "classroom", "id": "x-1", "name": "X", "school": "town"}
            assert (await browser.post("/admin/directory/add", add))[0] == 403
            add["school"] = "east"
            assert (await browser.post("/admin/directory/add", add))[0] == 303
            device = {"classroom": "west-1", "action": "issue"}
            assert (await browser.post("/admin/directory/device", device))[0] == 403
            status, page = await browser.post(
                "/admin/directory/device", {"classroom": "east-1", "action": "issue"}
            )
            assert status == 200 and "/room/east-1?device=" in page
            # it schedules from its own classrooms (here none hosts), not from another school's
            lesson = aiohttp.FormData()
            for name, value in (
                ("csrf", browser.csrf),
                ("title", "英语"),
                ("subject", "英语"),
                ("teacher", "wang"),
                ("host", "town-301"),
                ("receivers", "east-1"),
                ("receivers", "west-1"),
                ("date", "2026-03-03"),
                ("start", "10:00"),
                ("end", "10:40"),
            ):
                lesson.add_field(name, value)
            assert (await browser.post("/admin/timetable/add", lesson))[0] == 403
            # its statistics are its own: the county's figures name other schools
            async with browser.session.get(f"{server.url}/api/stats/receivers") as response:
                assert (await response.json())["school"] == "east"
            async with browser.session.get(f"{server.url}/api/stats/rate?school=town") as response:
                assert (await response.json())["school"] == "east"
        finally:
            await browser.close()


BAD_CSV = """日期,节次,开始,结束,主讲教室,接收教室,主讲教师,学科,年级,课题
2026-03-03,1,08:00,08:40,town-301,east-1,wang,音乐,三年级,好的一行
2026-03-03,2,09:00,08:40,town-301,east-1,wang,音乐,三年级,时间反了
2026-03-04,1,08:00,08:40,town-301,nowhere,wang,体育,三年级,没有这个教室
"""
CLEAN_CSV = """date,period,start,end,host,receivers,teacher,subject,grade,title,repeat_until
2026-03-03,1,08:00,08:40,town-301,east-1;west-1,wang,音乐,三年级,唱游,2026-03-17
2026-03-03,2,08:50,09:30,town-302,east-1,li,美术,四年级,色彩,
"""


@pytest.mark.timeout(60)
async def test_the_timetable_page_imports_a_csv_only_when_every_line_is_clean(
    tmp_path: Path,
) -> None:
    async with county_server(tmp_path) as server:
        browser = await _as(server, "county")
        try:
            await browser.get("/admin/timetable")

            def upload(text: str) -> aiohttp.FormData:
                form = aiohttp.FormData()
                form.add_field("csrf", browser.csrf)
                form.add_field("file", text.encode("gb18030"), filename="课表.csv")
                return form

            status, page = await browser.post("/admin/timetable/import", upload(BAD_CSV))
            assert status == 400
            assert "第 3 行：结束时间 08:40 必须晚于开始时间 09:00" in page
            assert "第 4 行：没有编号为 nowhere 的教室" in page
            assert "第 4 行：没有名为“体育”的学科" in page
            assert "第 2 行" not in page
            assert server.county.timetable.between(0, 2e9) == []  # nothing imported

            status, page = await browser.post("/admin/timetable/import", upload(CLEAN_CSV))
            assert status == 200 and "已导入 4 节课" in page
            status, page = await browser.get("/admin/timetable?week=2026-03-09")
            assert "唱游" in page and "色彩" not in page  # only the repeat is that week
            # importing the same file again clashes with itself, line by line
            status, page = await browser.post("/admin/timetable/import", upload(CLEAN_CSV))
            assert status == 409 and "第 2 行：教室 城关小学 301（town-301）" in page
            assert len(server.county.timetable.between(0, 2e9)) == 4
        finally:
            await browser.close()


@pytest.mark.timeout(30)
async def test_the_county_pages_have_no_inline_scripts_handlers_or_styles(tmp_path: Path) -> None:
    async with county_server(tmp_path) as server:
        server.schedule(starts_in=60, minutes=40)
        teacher, classroom = server.device_url("town-301"), server.device_url("east-1")
        pages = [await fetch(classroom), await fetch(f"{server.url}/admin/login")]
        server.clock.advance(120)
        pages += [await fetch(teacher), await fetch(classroom)]
        browser = await _as(server, "county")
        try:
            for path in ("/admin", "/admin/directory", "/admin/timetable", "/admin/devices"):
                pages.append(await browser.get(path))
            for report in REPORTS:
                pages.append(await browser.get(f"/admin/stats?report={report}"))
        finally:
            await browser.close()
        for status, html in pages:
            assert status == 200
            page = parse(html)
            assert page.inline_handlers == [] and page.inline_styles == []
            for script in page.scripts:
                if script.get("type") != "application/json":
                    assert script.get("type") == "module"
                    assert str(script.get("src")).startswith("/static/js/")
