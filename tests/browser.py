"""Real Chromium for tests, driven by Playwright's async API (see /work/shared/TESTING.md).

`chromium()` launches Debian's /usr/bin/chromium (never `playwright install`);
`open_page()` gives each participant its own browser context, as separate machines
would be; the helpers read what a page shows (`data-state`) and what its video does.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page, WebSocket, async_playwright

CHROMIUM = "/usr/bin/chromium"

BASE_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
FAKE_MEDIA_ARGS = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
AUTOPLAY_ALLOWED = "--autoplay-policy=no-user-gesture-required"
AUTOPLAY_BLOCKED = "--autoplay-policy=document-user-activation-required"

# Keeps every RTCPeerConnection a page creates in window.__pcs, so that tests can
# read getStats() without the product exposing anything.
RECORD_PEER_CONNECTIONS = """
(() => {
  const Original = window.RTCPeerConnection;
  if (!Original || Original.__recorded) return;
  window.__pcs = [];
  const Recorded = function (...args) {
    const pc = new Original(...args);
    window.__pcs.push(pc);
    return pc;
  };
  Recorded.prototype = Original.prototype;
  Object.setPrototypeOf(Recorded, Original);
  Recorded.__recorded = true;
  window.RTCPeerConnection = Recorded;
})();
"""

# The teacher's screen share, as a canvas: replaces navigator.mediaDevices.getDisplayMedia
# with one that returns canvas.captureStream() of an animated slide (960x540, 10 fps).
# Chromium's --auto-select-desktop-capture-source needs a desktop to capture, which
# headless Chromium does not reliably have.
FAKE_SCREEN = """
(() => {
  if (!navigator.mediaDevices) return;
  navigator.mediaDevices.getDisplayMedia = async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 960;
    canvas.height = 540;
    const g = canvas.getContext("2d");
    let n = 0;
    const draw = () => {
      n += 1;
      g.fillStyle = "#fdfcf7";
      g.fillRect(0, 0, 960, 540);
      g.fillStyle = "#1d2733";
      g.font = "bold 56px sans-serif";
      g.fillText("第三课  分数的加法", 60, 110);
      g.font = "40px sans-serif";
      g.fillText("1/4 + 2/4 = 3/4", 60, 220);
      g.fillStyle = "#b3261e";
      g.fillRect(60 + ((n * 12) % 760), 330, 140, 140);
    };
    draw();
    setInterval(draw, 100);
    return canvas.captureStream(10);
  };
})();
"""

# A PC without camera or microphone: getUserMedia finds nothing.
NO_DEVICES = """
(() => {
  if (!navigator.mediaDevices) return;
  navigator.mediaDevices.getUserMedia = async () => {
    throw new DOMException("Requested device not found", "NotFoundError");
  };
})();
"""


# A permission prompt answered late: getUserMedia resolves after 5 s.
LATE_DEVICES = """
(() => {
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) =>
    new Promise((resolve, reject) =>
      setTimeout(() => original(constraints).then(resolve, reject), 5000));
})();
"""

INBOUND_AUDIO_STATS = """
async () => {
  const pcs = (window.__pcs || []).filter((pc) => pc.connectionState !== "closed");
  const pc = pcs[pcs.length - 1];
  if (!pc) return null;
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      return {
        totalSamplesReceived: report.totalSamplesReceived ?? 0,
        totalAudioEnergy: report.totalAudioEnergy ?? 0,
        concealedSamples: report.concealedSamples ?? 0,
        packetsLost: report.packetsLost ?? 0,
      };
    }
  }
  return null;
}
"""

INBOUND_VIDEO_STATS = """
async () => {
  const pcs = (window.__pcs || []).filter((pc) => pc.connectionState !== "closed");
  const pc = pcs[pcs.length - 1];
  if (!pc) return null;
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "inbound-rtp" && report.kind === "video") {
      return {
        framesDecoded: report.framesDecoded ?? 0,
        frameWidth: report.frameWidth ?? 0,
        frameHeight: report.frameHeight ?? 0,
        framesPerSecond: report.framesPerSecond ?? 0,
        freezeCount: report.freezeCount ?? 0,
        totalFreezesDuration: report.totalFreezesDuration ?? 0,
        packetsLost: report.packetsLost ?? 0,
      };
    }
  }
  return null;
}
"""

VIDEO_PLAYBACK = """
(selector) => {
  const video = document.querySelector(selector);
  if (!video) return null;
  const quality = video.getVideoPlaybackQuality();
  return {
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    totalVideoFrames: quality.totalVideoFrames,
    currentTime: video.currentTime,
    audioTracks: video.srcObject ? video.srcObject.getAudioTracks().length : 0,
    paused: video.paused,
    muted: video.muted,
    readyState: video.readyState,
  };
}
"""


@dataclass
class PageLog:
    """What a page said on its console, which sockets it opened and the types of
    the signalling messages it received, all seen from outside the page."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)

    def on_socket(self, ws: WebSocket) -> None:
        self.sockets.append(ws.url)
        ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload: str | bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if isinstance(message, dict):
            self.received.append(str(message.get("type")))

    async def wait_for_message(self, kind: str, timeout: float = 15.0) -> None:
        """Wait, without touching the page, until it has received a `kind` message.
        (Anything Playwright runs in a page counts as a user gesture there.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while kind not in self.received:
            if loop.time() > deadline:
                raise AssertionError(f"no {kind!r} message within {timeout} s: {self.received}")
            await asyncio.sleep(0.05)

    def problems(self) -> list[str]:
        """Uncaught exceptions and console errors."""
        return [*self.errors, *(m for m in self.console if m.startswith("error:"))]


@asynccontextmanager
async def chromium(
    *, fake_media: bool = True, autoplay: bool = True, extra_args: Sequence[str] = ()
) -> AsyncIterator[Browser]:
    """One headless Chromium; closed on the way out even when the test fails."""
    args = [*BASE_ARGS]
    if fake_media:
        args += FAKE_MEDIA_ARGS
    args.append(AUTOPLAY_ALLOWED if autoplay else AUTOPLAY_BLOCKED)
    args += extra_args
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=args, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(
    browser: Browser,
    url: str | None = None,
    script: str | None = None,
    *,
    viewport: tuple[int, int] = (1280, 720),
    locale: str = "zh-CN",
) -> tuple[Page, PageLog]:
    """A page in a fresh browser context (own cookies, own permissions), with
    `script` run before the page's own (e.g. FAKE_SCREEN or NO_DEVICES)."""
    context = await browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, locale=locale
    )
    await context.add_init_script(RECORD_PEER_CONNECTIONS)
    if script is not None:
        await context.add_init_script(script)
    page = await context.new_page()
    log = PageLog()

    def on_console(message: ConsoleMessage) -> None:
        log.console.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    page.on("websocket", log.on_socket)
    if url is not None:
        await page.goto(url)
    return page, log


async def state_of(page: Page) -> str | None:
    """The page's status, as its `#status` element's data-state."""
    return await page.get_attribute("#status", "data-state")


async def wait_for_state(page: Page, state: str, timeout: float = 20.0) -> None:
    try:
        await page.wait_for_selector(
            f'#status[data-state="{state}"]', state="attached", timeout=timeout * 1000
        )
    except Exception as exc:
        shown = await page.evaluate(
            "[document.getElementById('status')?.dataset.state,"
            " document.body ? document.body.innerText.slice(0, 300) : '']"
        )
        raise AssertionError(f"page never reached {state!r}; it shows {shown!r}") from exc


async def status_text(page: Page) -> str:
    return " ".join((await page.inner_text("#status")).split())


async def wait_until(page: Page, expression: str, timeout: float = 15.0) -> Any:
    """Poll a JavaScript expression until it is truthy, and return its value. Unlike
    Playwright's wait_for_function, which evaluates its string with eval, this works
    under the server's CSP (no 'unsafe-eval')."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{expression!r} still {value!r} after {timeout} s")
        await asyncio.sleep(0.1)


async def playback(page: Page, selector: str = "video") -> dict[str, Any]:
    result = await page.evaluate(VIDEO_PLAYBACK, selector)
    assert result is not None, f"no {selector} on the page"
    return dict(result)


async def inbound_video(page: Page) -> dict[str, Any] | None:
    """inbound-rtp video stats of the page's newest open RTCPeerConnection."""
    result = await page.evaluate(INBOUND_VIDEO_STATS)
    return None if result is None else dict(result)


async def inbound_audio(page: Page) -> dict[str, Any] | None:
    """inbound-rtp audio stats of the page's newest open RTCPeerConnection."""
    result = await page.evaluate(INBOUND_AUDIO_STATS)
    return None if result is None else dict(result)


async def wait_until_playing(
    page: Page, selector: str = "video", timeout: float = 30.0, frames: int = 10
) -> dict[str, Any]:
    """Wait until the video has a size and has presented `frames` frames."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    shown: dict[str, Any] = {}
    while loop.time() < deadline:
        shown = await playback(page, selector)
        if shown["videoWidth"] > 0 and shown["totalVideoFrames"] >= frames:
            return shown
        await asyncio.sleep(0.25)
    raise AssertionError(f"{selector} did not play within {timeout} s: {json.dumps(shown)}")


async def wait_for_decoding(page: Page, timeout: float = 15.0) -> dict[str, Any]:
    """inbound-rtp video stats, once the newest connection has decoded a frame."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stats: dict[str, Any] | None = None
    while loop.time() < deadline:
        stats = await inbound_video(page)
        if stats is not None and stats["framesDecoded"] > 0:
            return stats
        await asyncio.sleep(0.25)
    raise AssertionError(f"no video frame decoded within {timeout} s: {stats}")


async def frames_grow(page: Page, seconds: float = 2.0, selector: str = "video") -> tuple[int, int]:
    """(frames presented by the video element, frames decoded by the newest
    RTCPeerConnection) over `seconds`, counted from the first decoded frame."""
    decoded_before = await wait_for_decoding(page)
    before = await playback(page, selector)
    await asyncio.sleep(seconds)
    after = await playback(page, selector)
    decoded_after = await inbound_video(page)
    decoded = 0 if decoded_after is None else decoded_after["framesDecoded"]
    return (
        after["totalVideoFrames"] - before["totalVideoFrames"],
        decoded - decoded_before["framesDecoded"],
    )
