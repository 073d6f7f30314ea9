"""The administration pages in Chromium: logging in through the form, changing the
directory and importing a timetable through the page's own forms (a browser sends
`Origin: null` under the pages' no-referrer policy, and the CSRF token must come
from the page), and the statistics' chart."""

from pathlib import Path

import pytest

from tests.browser import chromium, open_page
from tests.county import PASSWORD, county_server

pytestmark = pytest.mark.browser

CSV = """日期,节次,开始,结束,主讲教室,接收教室,主讲教师,学科,年级,课题
2026-03-03,1,08:00,08:40,town-301,east-1、west-1,wang,音乐,三年级,唱游
2026-03-03,2,08:00,08:40,town-302,east-1,li,美术,四年级,撞课
"""


@pytest.mark.timeout(60)
async def test_an_administrator_works_through_the_pages_forms(tmp_path: Path) -> None:
    async with county_server(tmp_path) as server:
        async with chromium(fake_media=False) as browser:
            page, log = await open_page(browser, f"{server.url}/admin/timetable")
            assert "/admin/login" in page.url  # sent to log in first
            await page.fill("input[name=login]", "county")
            await page.fill("input[name=password]", PASSWORD)
            async with page.expect_navigation():
                await page.click("form.login-form button[type=submit]")
            assert page.url.endswith("/admin/timetable"), page.url

            # the directory: add a school through its form
            await page.goto(f"{server.url}/admin/directory")
            school = page.locator("form[action='/admin/schools/add']").first
            await school.locator("input[name=id]").fill("north")
            await school.locator("input[name=name]").fill("北村小学")
            async with page.expect_navigation():
                await school.locator("button[type=submit]").click()
            assert await page.inner_text("#done") == "已添加学校。"
            assert server.county.directory.school("north") is not None

            # a device link is shown once
            row = page.locator("tr[data-classroom='west-1']")
            async with page.expect_navigation():
                await row.locator("button[value=issue]").click()
            assert "/room/west-1?device=" in await page.inner_text("#issued-url")

            # a timetable with a clash: refused, naming the line; nothing saved
            await page.goto(f"{server.url}/admin/timetable?week=2026-03-02")
            csv_file = tmp_path / "课表.csv"
            csv_file.write_bytes(CSV.encode("gb18030"))
            await page.set_input_files("#import input[name=file]", str(csv_file))
            async with page.expect_navigation():
                await page.click("#import button[type=submit]")
            problems = await page.inner_text("#problems")
            assert "第 3 行：教室 东村小学 一班（east-1）在 2026-03-03" in problems
            assert server.county.timetable.between(0, 2e10) == []

            csv_file.write_bytes(
                CSV.splitlines()[0].encode() + b"\n" + CSV.splitlines()[1].encode()
            )
            await page.set_input_files("#import input[name=file]", str(csv_file))
            async with page.expect_navigation():
                await page.click("#import button[type=submit]")
            assert await page.inner_text("#added") == "已导入 1 节课。"
            assert await page.locator(".slot").count() == 1

            # one lesson through the form, to two receiving classrooms, repeated weekly
            form = page.locator("#add-lesson")
            await form.locator("input[name=title]").fill("英语 第一课")
            await form.locator("select[name=subject]").select_option("英语")
            await form.locator("select[name=teacher]").select_option("li")
            await form.locator("select[name=host]").select_option("town-302")
            await form.locator("input[value=east-1]").check()
            await form.locator("input[value=west-1]").check()
            await form.locator("input[name=date]").fill("2026-03-04")
            await form.locator("input[name=start]").fill("10:00")
            await form.locator("input[name=end]").fill("10:40")
            await form.locator("input[name=until]").fill("2026-03-18")
            async with page.expect_navigation():
                await form.locator("button[type=submit]").click()
            assert await page.inner_text("#done") == "已排课。"
            added = server.county.timetable.listing(0, 2e10, classroom="west-1")
            assert [o.date for o in added] == [
                "2026-03-03",
                "2026-03-04",
                "2026-03-11",
                "2026-03-18",
            ]

            # statistics: an SVG chart and a CSV link, in English too
            await page.goto(f"{server.url}/admin/stats?report=rate&lang=en")
            assert await page.locator("#chart svg").count() == 1
            assert await page.inner_text("h1") == "Statistics"
            # the refused import answered 409, which the console notes; nothing else
            assert [p for p in log.problems() if "409 (Conflict)" not in p] == []
