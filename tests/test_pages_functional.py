"""The HTML pages: languages, refused links, and pages that a strict CSP can serve."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import jwt
import pytest
from aiohttp import ClientSession, CookieJar
from playwright.async_api import Route

from tests.browser import chromium, open_page, status_text, wait_for_state
from tests.conftest import RunningServer

pytestmark = pytest.mark.timeout(60)

WEB = Path(__file__).resolve().parent.parent / "web"


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    # unsafe: the test server is at an IP address, where cookies are otherwise refused
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:
        yield session


async def get(http: ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


class _Page(HTMLParser):
    """Collects the parts of a page that matter for the CSP and for the tests."""

    def __init__(self) -> None:
        super().__init__()
        self.html_lang: str | None = None
        self.scripts: list[dict[str, str | None]] = []
        self.inline_handlers: list[str] = []
        self.inline_styles: list[str] = []
        self.links: dict[str, str] = {}
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.html_lang = attributes.get("lang")
        if tag == "script":
            self._script = {**attributes, "text": ""}
            self.scripts.append(self._script)
        if tag == "a" and attributes.get("hreflang"):
            self.links[str(attributes["hreflang"])] = str(attributes.get("href"))
        for name in attributes:
            if name.startswith("on"):
                self.inline_handlers.append(f"<{tag} {name}>")
            if name == "style":
                self.inline_styles.append(f"<{tag} style>")

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script["text"] = (self._script["text"] or "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def json_block(html: str, block_id: str) -> object:
    for script in parse(html).scripts:
        if script.get("id") == block_id:
            return json.loads(script["text"] or "")
    raise AssertionError(f"no #{block_id} block")


# -- languages ---------------------------------------------------------------------


async def test_landing_page_is_chinese_by_default_and_english_on_request(
    server: RunningServer, http: ClientSession
) -> None:
    status, html = await get(http, f"{server.url}/")
    assert status == 200
    assert parse(html).html_lang == "zh-CN"
    assert "专递课堂是一个直播授课平台" in html

    status, html = await get(http, f"{server.url}/?lang=en")
    assert status == 200
    assert parse(html).html_lang == "en"
    assert "Zhuandi is a live teaching platform" in html

    # the switch is remembered in a cookie
    status, html = await get(http, f"{server.url}/")
    assert parse(html).html_lang == "en"


async def test_lesson_pages_render_in_both_languages_with_a_switch_that_keeps_the_link(
    server: RunningServer, http: ClientSession
) -> None:
    teacher = server.page("maths", "teacher", "王老师")
    classroom = server.page("maths", "classroom", "一号教室")

    status, html = await get(http, teacher)
    assert status == 200
    assert "开始上课" in html and "王老师" in html
    status, html = await get(http, teacher + "&lang=en")
    assert "Start lesson" in html and "Classrooms" in html

    status, html = await get(http, classroom + "&lang=zh-CN")
    assert status == 200
    assert "点击开启声音" in html
    page = parse(html)
    assert set(page.links) == {"zh-CN", "en"}
    token = classroom.split("token=", 1)[1]
    assert all(token in link for link in page.links.values())

    status, html = await get(http, classroom + "&lang=en")
    assert "Click to turn on sound" in html


async def test_an_observer_link_opens_the_watching_page(
    server: RunningServer, http: ClientSession
) -> None:
    status, html = await get(http, server.page("maths", "observer", "督导"))
    assert status == 200
    assert "点击开启声音" in html
    page = json_block(html, "page")
    assert isinstance(page, dict) and page["role"] == "observer"

    status, html = await get(
        http, f"{server.url}/lesson/maths/observer?token={server.token('maths', 'classroom')}"
    )
    assert status == 403
    assert 'data-code="token_wrong_role"' in html


async def test_pages_hand_the_catalog_and_the_lesson_to_their_scripts(
    server: RunningServer, http: ClientSession
) -> None:
    url = server.page("maths", "classroom", "一号教室")
    _, html = await get(http, url + "&lang=en")
    messages = json_block(html, "messages")
    assert isinstance(messages, dict)
    assert messages["classroom.status.waiting"] == "Waiting for the teacher to start"
    assert json_block(html, "page") == {
        "lesson": "maths",
        "role": "classroom",
        "name": "一号教室",
        "token": url.split("token=", 1)[1],
    }


async def test_pages_have_no_inline_scripts_handlers_or_styles(
    server: RunningServer, http: ClientSession
) -> None:
    urls = [
        f"{server.url}/",
        server.page("maths", "teacher"),
        server.page("maths", "classroom"),
        f"{server.url}/lesson/maths/teacher?token=forged",
    ]
    for url in urls:
        _, html = await get(http, url)
        page = parse(html)
        assert page.inline_handlers == [], url
        assert page.inline_styles == [], url
        for script in page.scripts:
            if script.get("type") == "application/json":
                continue
            assert script.get("type") == "module" and script.get("src"), (url, script)
            assert str(script["src"]).startswith("/static/js/")


async def test_a_hostile_name_cannot_break_out_of_the_page(
    server: RunningServer, http: ClientSession
) -> None:
    name = '</script><script>alert(1)</script>"'
    url = server.page("maths", "classroom", name)
    status, html = await get(http, url)
    assert status == 200
    assert "<script>alert(1)" not in html
    page = json_block(html, "page")
    assert isinstance(page, dict) and page["name"] == name
    assert len([s for s in parse(html).scripts if s.get("src")]) == 1


async def test_scripts_and_styles_are_served_with_the_right_types(
    server: RunningServer, http: ClientSession
) -> None:
    for path in sorted((WEB / "static" / "js").glob("*.js")):
        async with http.get(f"{server.url}/static/js/{path.name}") as response:
            assert response.status == 200, path.name
            assert response.content_type in ("text/javascript", "application/javascript")
    async with http.get(f"{server.url}/static/css/app.css") as response:
        assert response.status == 200
        assert response.content_type == "text/css"


# -- refused links -----------------------------------------------------------------


def forged(lesson: str, role: str) -> str:
    """A token with the right claims signed with another secret."""
    claims = {"iss": "zhuandi", "lesson": lesson, "role": role, "name": "x", "iat": 1, "exp": 2**40}
    return jwt.encode(claims, "not-the-server-secret-" * 3, algorithm="HS256")


@pytest.mark.parametrize(
    ("case", "status", "code", "reason"),
    [
        ("forged", 401, "token_invalid", "这个链接无效"),
        ("garbage", 401, "token_invalid", "这个链接无效"),
        ("missing", 401, "token_missing", "链接不完整"),
        ("expired", 401, "token_expired", "这个链接已经过期"),
        ("wrong_role", 403, "token_wrong_role", "这个链接不能用于本页面"),
        ("wrong_lesson", 401, "token_wrong_lesson", "这个链接属于另一节课"),
    ],
)
async def test_a_refused_link_shows_why_with_the_right_status(
    server: RunningServer, http: ClientSession, case: str, status: int, code: str, reason: str
) -> None:
    token = {
        "forged": forged("maths", "teacher"),
        "garbage": "not.a.token",
        "missing": "",
        "expired": server.token("maths", "teacher", ttl=-60),
        "wrong_role": server.token("maths", "classroom"),
        "wrong_lesson": server.token("physics", "teacher"),
    }[case]
    got, html = await get(http, f"{server.url}/lesson/maths/teacher?token={token}")
    assert got == status
    assert f'data-code="{code}"' in html
    assert reason in html
    assert "无法进入课堂" in html

    got, html = await get(http, f"{server.url}/lesson/maths/teacher?token={token}&lang=en")
    assert got == status
    assert "This link cannot be used" in html


def test_every_error_code_of_the_protocol_has_words_in_both_languages() -> None:
    protocol = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    table = protocol.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    codes = {code for cell in first_cells for code in re.findall(r"`(\w+)`", cell)}
    assert "token_expired" in codes and "server_full" in codes
    catalogs = {
        language: json.loads((WEB / "i18n" / f"{language}.json").read_text(encoding="utf-8"))
        for language in ("zh-CN", "en")
    }
    assert catalogs["zh-CN"].keys() == catalogs["en"].keys()
    for language, messages in catalogs.items():
        missing = sorted(c for c in codes if f"error.{c}" not in messages)
        assert missing == [], f"{language} lacks words for {missing}"


def test_every_message_key_the_pages_use_is_in_the_catalogs() -> None:
    catalog = json.loads((WEB / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    sources = [*(WEB / "templates").glob("*.html"), *(WEB / "static" / "js").glob("*.js")]
    used = set()
    for source in sources:
        used |= set(re.findall(r"""\bt\(\s*["']([\w.-]*\w)["']""", source.read_text()))
    assert len(used) > 30
    assert sorted(used - catalog.keys()) == []
    for state in ("none", "connecting", "connected", "failed", "watching"):
        assert f"media.{state}" in catalog


# -- in Chromium -------------------------------------------------------------------


@pytest.mark.browser
async def test_chromium_shows_why_an_expired_link_is_refused(server: RunningServer) -> None:
    url = f"{server.url}/lesson/maths/classroom?token={server.token('maths', 'classroom', ttl=-5)}"
    async with chromium(fake_media=False) as browser:
        page, log = await open_page(browser)
        response = await page.goto(url)
        assert response is not None and response.status == 401
        assert "这个链接已经过期" in await page.inner_text("#reason")
        await page.click("a[hreflang=en]")
        await page.wait_for_selector("html[lang=en]")
        assert "This link has expired." in await page.inner_text("#reason")
        assert log.sockets == []


@pytest.mark.browser
async def test_a_link_that_expires_before_joining_shows_the_reason_and_does_not_retry(
    server: RunningServer,
) -> None:
    # The page is served while the token is valid; its script is held back until the
    # token has expired, so the refusal comes over the socket, as a fatal error.
    async def late(route: Route) -> None:
        await asyncio.sleep(4.0)
        await route.continue_()

    async with chromium(fake_media=False) as browser:
        page, log = await open_page(browser)
        await page.route("**/static/js/classroom.js", late)
        token = server.token("maths", "classroom", "一号教室", ttl=3)  # valid for 2 to 3 s
        response = await page.goto(
            f"{server.url}/lesson/maths/classroom?token={token}", wait_until="commit"
        )
        assert response is not None and response.status == 200
        await wait_for_state(page, "error", timeout=15)
        assert "这个链接已经过期" in await status_text(page)
        await asyncio.sleep(2.5)  # longer than the first reconnection delay
        assert len(log.sockets) == 1
        assert log.received == ["error"]
        assert await page.is_hidden("#sound")


@pytest.mark.browser
async def test_the_page_modules_order_codecs_back_off_and_format_messages(
    server: RunningServer,
) -> None:
    async with chromium(fake_media=False) as browser:
        page, log = await open_page(browser, f"{server.url}/?lang=en")
        result = await page.evaluate(
            """async () => {
              const media = await import("/static/js/media.js");
              const protocol = await import("/static/js/protocol.js");
              const i18n = await import("/static/js/i18n.js");
              const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
              const name = (c) => `${c.mimeType} ${c.sdpFmtpLine ?? ""}`.trim();
              const h264 = media.orderCodecs(codecs, "H264").map(name);
              const vp8 = media.orderCodecs(codecs, "VP8").map(name);
              const backoff = new protocol.Backoff(1000, 15000);
              const delays = Array.from({ length: 7 }, () => backoff.next());
              backoff.reset();
              const steady = new protocol.Backoff(1000, 15000, 3);
              const steadyDelays = Array.from({ length: 6 }, () => steady.next());
              return {
                steadyDelays,
                pageSteady: protocol.RECONNECT_STEADY,
                h264First: h264[0],
                vp8First: vp8[0],
                sameCodecs: h264.length === codecs.length && vp8.length === codecs.length,
                rtx: vp8.filter((c) => c.startsWith("video/rtx")).length,
                delays,
                afterReset: backoff.next(),
                plain: protocol.signallingUrl({ protocol: "http:", host: "school:8080" }),
                tls: protocol.signallingUrl({ protocol: "https:", host: "zd.example.cn" }),
                retryAfterShutdown: protocol.mayReconnect({ code: "shutdown", message: "" }),
                retryAfterExpiry: protocol.mayReconnect({ code: "token_expired", message: "" }),
                count: i18n.t("teacher.classrooms.count", { count: 3 }),
                unknown: i18n.errorText("no_such_code"),
                missing: i18n.t("no.such.key"),
              };
            }"""
        )
        assert log.problems() == []
    assert result["h264First"].startswith("video/H264")
    assert "packetization-mode=1" in result["h264First"]
    assert "profile-level-id=42" in result["h264First"]
    assert result["vp8First"] == "video/VP8"
    assert result["sameCodecs"] and result["rtx"] >= 1
    delays = result["delays"]
    for delay, nominal in zip(delays, [1000, 2000, 4000, 8000, 15000, 15000, 15000], strict=True):
        assert 0.75 * nominal <= delay <= 1.25 * nominal
    assert 750 <= result["afterReset"] <= 1250
    # the pages retry about every second for as long as the server keeps a seat
    for delay, nominal in zip(result["steadyDelays"], [1000] * 3 + [1000, 2000, 4000], strict=True):
        assert 0.75 * nominal <= delay <= 1.25 * nominal
    assert result["pageSteady"] * 1.0 >= 40
    assert result["plain"] == "ws://school:8080/ws"
    assert result["tls"] == "wss://zd.example.cn/ws"
    assert result["retryAfterShutdown"] is True and result["retryAfterExpiry"] is False
    assert result["count"] == "Classrooms joined: 3"
    assert result["unknown"] == "An error occurred (no_such_code)."
    assert result["missing"] == "no.such.key"
