"""The replay page in real Chromium: the lesson's HLS plays (hls.js, pinned and
vendored), reaches readyState >= 2, plays, and plays on after a seek to the middle;
a private lesson plays with its token."""

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from server.keys import LIBRARY
from server.library_pages import HLS_JS
from tests.archives import Part
from tests.browser import chromium, open_page
from tests.conftest import make_settings, start_server
from tests.libraries import prepare_library

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
SECONDS = 6.0


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("replay")
    prepare_library(
        root / "var",
        {
            "open1": ([Part(SECONDS)], {"title": "Open lesson", "visibility": "public"}),
            "closed1": ([Part(SECONDS, first=7000)], {"visibility": "private"}),
        },
    )
    return root


def write_status(root: Path, lesson: str, **changes: Any) -> None:
    path = root / "var" / "library" / lesson / "status.json"
    status = json.loads(path.read_text())
    status.update(changes)
    path.write_text(json.dumps(status))


async def video_state(page: Page) -> dict[str, Any]:
    return dict(
        await page.evaluate(
            """() => {
              const v = document.getElementById("video");
              return {readyState: v.readyState, currentTime: v.currentTime,
                      duration: v.duration, paused: v.paused, player: v.dataset.player,
                      width: v.videoWidth, error: v.error && v.error.code,
                      status: document.getElementById("status").dataset.state};
            }"""
        )
    )


async def wait_until(
    page: Page, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll the video's state until `check` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state: dict[str, Any] = {}
    while loop.time() < deadline:
        state = await video_state(page)
        if check(state):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"the video never {what}: {state}")


async def play_and_seek(page: Page) -> None:
    state = await wait_until(page, lambda v: v["readyState"] >= 2, "had data")
    expected = "hls.js" if HLS_JS.is_file() else "native"
    assert state["player"] == expected, state
    assert state["width"] == 640
    await page.evaluate("() => { const v = document.getElementById('video'); v.muted = true; }")
    await page.evaluate("() => document.getElementById('video').play()")
    await wait_until(page, lambda v: v["currentTime"] > 0.5 and not v["paused"], "played")
    state = await video_state(page)
    assert abs(state["duration"] - SECONDS) < 1.0, state
    middle = state["duration"] / 2
    await page.evaluate(
        """(t) => new Promise((resolve) => {
             const v = document.getElementById("video");
             v.addEventListener("seeked", resolve, {once: true});
             v.currentTime = t;
           })""",
        middle,
    )
    state = await wait_until(page, lambda v: v["readyState"] >= 2, "had data after the seek")
    assert abs(state["currentTime"] - middle) < 1.0, state
    await wait_until(
        page,
        lambda v: v["currentTime"] > middle + 0.5 and not v["paused"],
        "played on after the seek",
    )


async def test_the_replay_page_plays_and_seeks(prepared: Path) -> None:
    runner, server = await start_server(
        make_settings(prepared, library={"process_after_lesson": False})
    )
    try:
        async with chromium(fake_media=False) as browser:
            page, log = await open_page(browser, f"{server.url}/library/open1")
            await play_and_seek(page)
            assert await page.get_attribute("#status", "data-state") == "playing"
            download = await page.get_attribute("#download", "href")
            assert download == "/library/open1/files/lesson.mp4"
            # the list shows the lesson with its thumbnail
            await page.goto(f"{server.url}/library")
            await page.wait_for_selector('.lesson-card[data-lesson="open1"] img')
            loaded = await page.evaluate(
                "() => document.querySelector('.lesson-card[data-lesson=open1] img').naturalWidth"
            )
            assert loaded == 320
            assert await page.locator('.lesson-card[data-lesson="closed1"]').count() == 0
            assert not log.problems(), log.problems()

            # sound only, for a slow line: the audio rung takes over where the video was
            await page.goto(f"{server.url}/library/open1")
            await wait_until(page, lambda v: v["readyState"] >= 2, "had data")
            await page.evaluate("() => { document.getElementById('video').muted = true; }")
            await page.click("#audio-only")
            await page.evaluate("() => document.getElementById('video').play()")
            await wait_until(page, lambda v: v["currentTime"] > 0.5, "played sound only")
            assert await page.locator("#audio-only").is_hidden()

            token = server.token("closed1", "observer")
            page, log = await open_page(browser, f"{server.url}/library/closed1?token={token}")
            await play_and_seek(page)
            assert not log.problems(), log.problems()

            # the list follows a job's progress by itself
            library = server.app[LIBRARY]
            library.set_state("open1", "processing")
            write_status(prepared, "open1", state="running", stage="hls-360p", percent=10.0)
            page, log = await open_page(browser, f"{server.url}/library")
            card = page.locator('.lesson-card[data-lesson="open1"]')
            assert await card.locator(".job-progress").get_attribute("value") == "10.0"
            write_status(prepared, "open1", percent=60.0)
            await page.wait_for_function(
                "() => document.querySelector('.lesson-card[data-lesson=open1] progress')"
                ".value === 60",
                timeout=10_000,
            )
            write_status(prepared, "open1", state="done", stage="", percent=100.0)
            library.set_state("open1", "ready")
            await page.wait_for_selector(
                '.lesson-card[data-lesson="open1"][data-state="ready"] .job[hidden]',
                state="attached",
                timeout=10_000,
            )
            assert not log.problems(), log.problems()
    finally:
        await runner.cleanup()
