"""Real Chromium pages against the real server: the teacher's fake camera reaches
the classrooms' screens, and the pages say what is going on."""

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Page, Route, WebSocketRoute

from tests.browser import (
    FAKE_MEDIA_ARGS,
    NO_DEVICES,
    chromium,
    frames_grow,
    inbound_audio,
    open_page,
    playback,
    status_text,
    wait_for_state,
    wait_until,
    wait_until_playing,
)
from tests.conftest import RunningServer, make_settings, start_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


async def first_video_codec(page: Page) -> str:
    """The codec of the first payload type on the m=video line of the page's offer."""
    sdp = str(await page.evaluate("window.__pcs[window.__pcs.length - 1].localDescription.sdp"))
    payload = re.search(r"^m=video \S+ \S+ (\d+)", sdp, re.MULTILINE)
    assert payload is not None, sdp
    codec = re.search(rf"^a=rtpmap:{payload.group(1)} ([\w-]+)/", sdp, re.MULTILINE)
    assert codec is not None, sdp
    return codec.group(1)


async def test_two_classrooms_play_the_teacher_camera_and_the_teacher_sees_them(
    server: RunningServer,
) -> None:
    async with chromium() as browser:
        teacher, teacher_log = await open_page(browser, server.page("maths", "teacher", "王老师"))
        await wait_for_state(teacher, "ready")
        assert await teacher.inner_text("#toggle") == "开始上课"
        await teacher.click("#toggle")
        await wait_for_state(teacher, "live")
        assert await teacher.inner_text("#toggle") == "下课"
        assert await first_video_codec(teacher) == "VP8"

        classrooms = []
        for name in ("一号教室", "二号教室"):
            page, log = await open_page(browser, server.page("maths", "classroom", name))
            classrooms.append((page, log))
        for page, _ in classrooms:
            await wait_for_state(page, "live")
            shown = await wait_until_playing(page)
            assert shown["videoWidth"] > 0 and shown["videoHeight"] > 0
            assert not shown["paused"]
        for page, _ in classrooms:
            audio_before = await inbound_audio(page)
            presented, decoded = await frames_grow(page, seconds=2.0)
            assert presented >= 10, f"only {presented} frames shown in 2 s"
            assert decoded >= 10, f"only {decoded} frames decoded in 2 s"
            # the fake microphone's beeps arrive, and play on the unmuted video
            audio = await inbound_audio(page)
            assert audio_before is not None and audio is not None
            assert audio["totalSamplesReceived"] - audio_before["totalSamplesReceived"] > 48_000
            assert audio["totalAudioEnergy"] > 0
            shown = await playback(page)
            assert shown["audioTracks"] == 1 and not shown["muted"]

        roster = teacher.locator("#classrooms li")
        await roster.nth(1).wait_for()
        await wait_until(
            teacher,
            "[...document.querySelectorAll('#classrooms .classroom-media')]"
            ".every((e) => e.textContent === '正在收看')",
        )
        names = await roster.locator(".classroom-name").all_inner_texts()
        states = await roster.locator(".classroom-media").all_inner_texts()
        assert sorted(zip(names, states, strict=True)) == [
            ("一号教室", "正在收看"),
            ("二号教室", "正在收看"),
        ]
        assert await teacher.inner_text("#classroom-count") == "已加入 2 个教室"

        for log in [teacher_log, *(log for _, log in classrooms)]:
            assert log.problems() == []
            assert len(log.sockets) == 1


async def test_classroom_waits_for_the_teacher_and_follows_start_and_stop(
    server: RunningServer,
) -> None:
    async with chromium() as browser:
        classroom, classroom_log = await open_page(
            browser, server.page("physics", "classroom", "三号教室")
        )
        await wait_for_state(classroom, "waiting")
        assert "等待老师开始上课" in await status_text(classroom)

        observer, _ = await open_page(browser, server.page("physics", "observer", "督导"))
        await wait_for_state(observer, "waiting")
        teacher, _ = await open_page(browser, server.page("physics", "teacher", "李老师"))
        await wait_for_state(teacher, "ready")
        # The teacher is in but not live: still waiting, now with the teacher's name.
        await wait_until(
            classroom, "document.getElementById('status-text').textContent.includes('李老师')"
        )
        assert await classroom.get_attribute("#status", "data-state") == "waiting"

        for _ in range(2):  # start, stop, and start again
            await teacher.click("#toggle")
            await wait_for_state(classroom, "live")
            await wait_until_playing(classroom)
            presented, decoded = await frames_grow(classroom, seconds=1.5)
            assert presented > 5 and decoded > 5
            await wait_for_state(observer, "live")
            await wait_until_playing(observer)
            # observers watch; they are not in the teacher's list of classrooms
            assert await teacher.locator("#classrooms li").count() == 1

            await teacher.click("#toggle")
            await wait_for_state(teacher, "ready")
            await wait_for_state(classroom, "waiting")
            assert "等待" in await status_text(classroom)

        # Opening the page was the only step: one socket, one media connection.
        assert len(classroom_log.sockets) == 1
        assert await classroom.evaluate("window.__pcs.length") == 1
        assert classroom_log.problems() == []


async def test_pages_reconnect_by_themselves_after_the_server_restarts(tmp_path: Path) -> None:
    runner, server = await start_server(make_settings(tmp_path))
    port = int(server.url.rsplit(":", 1)[1])
    running = [runner]
    try:
        async with chromium() as browser:
            teacher, teacher_log = await open_page(browser, server.page("art", "teacher"))
            await wait_for_state(teacher, "ready")
            await teacher.click("#toggle")
            classroom, classroom_log = await open_page(
                browser, server.page("art", "classroom", "四号教室")
            )
            await wait_for_state(classroom, "live")
            await wait_until_playing(classroom)

            await running.pop().cleanup()
            await wait_for_state(classroom, "reconnecting", timeout=10)
            await wait_for_state(teacher, "reconnecting", timeout=10)
            # the same port and data directory, so the same token secret
            runner, server = await start_server(make_settings(tmp_path, server={"port": port}))
            running.append(runner)

            await wait_for_state(teacher, "live", timeout=30)
            await wait_for_state(classroom, "live", timeout=30)
            presented, decoded = await frames_grow(classroom, seconds=2.0)
            assert presented >= 10 and decoded >= 10
            assert len(classroom_log.sockets) >= 2
            assert len(teacher_log.sockets) >= 2
    finally:
        for runner in running:
            await runner.cleanup()


async def test_classroom_offers_again_when_its_media_connection_is_lost(
    server: RunningServer,
) -> None:
    async with chromium() as browser:
        teacher, _ = await open_page(browser, server.page("music", "teacher"))
        await wait_for_state(teacher, "ready")
        await teacher.click("#toggle")
        classroom, log = await open_page(browser, server.page("music", "classroom", "六号教室"))
        await wait_for_state(classroom, "live")
        await wait_until_playing(classroom)

        # What the server does when a classroom's connection fails (server/peer.py).
        lesson = server.lessons.get("music")
        assert lesson is not None
        peer = next(p for p in lesson.peers.values() if p.role == "classroom")
        peer._set_media_state("failed")
        await peer.close_media(keep_state=True)

        await wait_for_state(classroom, "reconnecting", timeout=5)
        await wait_for_state(classroom, "live", timeout=20)
        presented, decoded = await frames_grow(classroom, seconds=1.5)
        assert presented > 5 and decoded > 5
        assert await classroom.evaluate("window.__pcs.length") == 2
        assert len(log.sockets) == 1, "a lost media connection needs no new socket"


async def test_an_h264_lesson_goes_out_as_h264_and_plays(tmp_path: Path) -> None:
    runner, server = await start_server(make_settings(tmp_path, media={"video_codec": "H264"}))
    try:
        async with chromium() as browser:
            teacher, _ = await open_page(browser, server.page("english", "teacher"))
            await wait_for_state(teacher, "ready")
            await teacher.click("#toggle")
            await wait_for_state(teacher, "live")
            assert await first_video_codec(teacher) == "H264"
            classroom, _ = await open_page(browser, server.page("english", "classroom"))
            await wait_for_state(classroom, "live")
            await wait_until_playing(classroom)
            presented, decoded = await frames_grow(classroom, seconds=1.5)
            assert presented > 5 and decoded > 5
    finally:
        await runner.cleanup()


async def test_sound_button_appears_when_autoplay_is_blocked_and_turns_sound_on(
    server: RunningServer,
) -> None:
    async with chromium(autoplay=False) as browser:
        # A page that captures a camera or microphone may play sound by itself, so
        # this is a classroom without them, where autoplay is blocked.
        classroom, log = await open_page(
            browser, server.page("music", "classroom", "五号教室"), NO_DEVICES
        )
        # No Playwright call may touch the page before it tries to play: each would
        # count as a user gesture and lift the autoplay block.
        await log.wait_for_message("answer")
        await asyncio.sleep(1.0)
        button = classroom.locator("#sound")
        assert await button.is_visible()
        await wait_for_state(classroom, "waiting")
        assert await button.inner_text() == "点击开启声音"

        teacher, _ = await open_page(browser, server.page("music", "teacher"))
        await wait_for_state(teacher, "ready")
        await teacher.click("#toggle")
        await wait_for_state(classroom, "live")
        shown = await wait_until_playing(classroom)
        assert shown["muted"], "the video must play muted until someone clicks"

        await button.click()
        await button.wait_for(state="hidden", timeout=5_000)
        shown = await playback(classroom)
        assert not shown["muted"] and not shown["paused"]
        presented, _ = await frames_grow(classroom, seconds=1.0)
        assert presented > 0


async def test_teacher_page_opened_again_stops_the_first_one_for_good(
    server: RunningServer,
) -> None:
    url = server.page("history", "teacher", "赵老师")
    async with chromium() as browser:
        first, first_log = await open_page(browser, url, locale="en-US")
        await wait_for_state(first, "ready")
        second, _ = await open_page(browser, url)
        await wait_for_state(second, "ready")

        await wait_for_state(first, "error")
        assert "已在其他窗口" in await status_text(first)
        assert await first.is_disabled("#toggle")
        await asyncio.sleep(2.5)  # longer than the first reconnection delay
        assert len(first_log.sockets) == 1, "a replaced page must not reconnect"
        assert await first.get_attribute("#status", "data-state") == "error"


async def test_teacher_page_says_why_the_camera_cannot_be_used(server: RunningServer) -> None:
    # No fake UI: Playwright's contexts refuse camera permission. The second name
    # resolves to loopback, but a page on plain http there is not a secure context.
    rules = "--host-resolver-rules=MAP zhuandi.test 127.0.0.1"
    async with chromium(fake_media=False, extra_args=[FAKE_MEDIA_ARGS[1], rules]) as browser:
        denied, _ = await open_page(browser, server.page("chemistry", "teacher"))
        await wait_for_state(denied, "error")
        assert "浏览器没有得到允许" in await status_text(denied)
        assert await denied.is_disabled("#toggle")

        insecure_url = server.page("biology", "teacher").replace("127.0.0.1", "zhuandi.test")
        insecure, _ = await open_page(browser, insecure_url + "&lang=en")
        await wait_for_state(insecure, "error")
        assert "secure (HTTPS) connection" in await status_text(insecure)
        assert await insecure.is_disabled("#toggle")


async def test_classroom_pings_every_20_s_and_gives_up_on_a_silent_socket(
    server: RunningServer,
) -> None:
    """The socket runs through a relay that can go quiet, like a cut cable that TCP
    has not noticed; the page's clock is Playwright's, so 20 s pass at once."""
    sockets: list[dict[str, object]] = []

    def relay(ws: WebSocketRoute) -> None:
        link: dict[str, object] = {"quiet": False, "pings": 0, "pongs": 0}
        sockets.append(link)
        upstream = ws.connect_to_server()

        def up(message: str | bytes) -> None:
            if isinstance(message, str) and '"ping"' in message:
                link["pings"] = int(str(link["pings"])) + 1
            upstream.send(message)

        def down(message: str | bytes) -> None:
            if not link["quiet"]:
                ws.send(message)
                if isinstance(message, str) and '"pong"' in message:
                    link["pongs"] = int(str(link["pongs"])) + 1

        ws.on_message(up)
        upstream.on_message(down)

    async with chromium(fake_media=False) as browser:
        page, _ = await open_page(browser)
        await page.clock.install()
        await page.route_web_socket("**/ws", relay)
        await page.goto(server.page("geography", "classroom"))
        await wait_for_state(page, "waiting")

        async def relayed(key: str, count: int) -> None:
            # the relay sees a message a moment after the page's clock sent it, and
            # the page must have its pong before the clock jumps a whole interval on
            # (in real time 20 s is plenty; a jump is not)
            for _ in range(100):
                if sockets[0][key] == count:
                    return
                await asyncio.sleep(0.05)
            assert sockets[0][key] == count, key

        await page.clock.run_for(20_500)
        await relayed("pings", 1)
        await relayed("pongs", 1)
        await page.clock.run_for(20_000)
        await relayed("pings", 2)  # answered, so the socket is kept
        assert await page.get_attribute("#status", "data-state") == "waiting"

        sockets[0]["quiet"] = True
        await page.clock.run_for(20_000)  # a ping that gets no answer
        await page.clock.run_for(20_000)  # ... for a whole interval: give up
        await wait_for_state(page, "reconnecting", timeout=5)
        await page.clock.run_for(2_000)  # the first reconnection delay
        await wait_for_state(page, "waiting", timeout=10)
        assert len(sockets) == 2


STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def test_pages_work_under_a_strict_content_security_policy(server: RunningServer) -> None:
    async def with_csp(route: Route) -> None:
        response = await route.fetch()
        headers = {**response.headers, "content-security-policy": STRICT_CSP}
        await route.fulfill(response=response, headers=headers)

    # A document that Playwright fulfils counts as coming from the public Internet,
    # which Chromium's local network access checks then forbid to reach 127.0.0.1.
    lna = "--disable-features=LocalNetworkAccessChecks"
    async with chromium(extra_args=[lna]) as browser:
        pages = {}
        for role in ("teacher", "classroom"):
            page, log = await open_page(browser)
            await page.route("**/lesson/**", with_csp)
            await page.goto(server.page("drawing", role))
            pages[role] = (page, log)
        (teacher, teacher_log), (classroom, classroom_log) = pages.values()
        await wait_for_state(teacher, "ready")
        await teacher.click("#toggle")
        await wait_for_state(classroom, "live")
        await wait_until_playing(classroom)
        for log in (teacher_log, classroom_log):
            assert log.problems() == []
            assert not [m for m in log.console if "Content Security Policy" in m]
        # and the policy is really there: an inline script is refused
        ran = await classroom.evaluate(
            """() => {
              const script = document.createElement("script");
              script.textContent = "window.inlineRan = true";
              document.body.append(script);
              return window.inlineRan === true;
            }"""
        )
        assert ran is False
