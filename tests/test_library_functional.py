"""The library through the real server and CLI: a recorded lesson becomes an MP4 and
an HLS ladder, kill -9 leaves an archive that reprocesses, search, visibility, path
traversal, range requests, and list/show/set/reprocess/export/import."""

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from recorder.status import STATUS
from server.keys import LIBRARY
from tests.archives import Part
from tests.conftest import RunningServer, make_settings, start_server
from tests.libraries import ROOT, copy_data, prepare_library, zhuandi
from tests.media_probe import decode_all, ffprobe
from tests.peers import Classroom, Teacher

LESSONS = {
    "alg1": (
        [Part(3.0)],
        {
            "title": "一元一次方程",
            "subject": "数学",
            "grade": "七年级",
            "teacher": "王老师",
            "school": "城关中学",
            "date": "2026-03-02",
            "tags": "代数,方程",
            "visibility": "public",
        },
    ),
    "poem1": (
        [Part(2.0)],
        {
            "title": "静夜思",
            "subject": "语文",
            "grade": "二年级",
            "teacher": "李老师",
            "school": "希望小学",
            "date": "2026-03-05",
            "tags": "古诗",
        },
    ),
    "secret1": (
        [Part(2.0)],
        {
            "title": "教研课",
            "subject": "数学",
            "grade": "八年级",
            "teacher": "王老师",
            "school": "城关中学",
            "date": "2026-04-01",
            "visibility": "private",
        },
    ),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory (its parent is what make_settings takes) with three lessons."""
    root = tmp_path_factory.mktemp("prepared")
    prepare_library(root / "var", LESSONS)
    (root / "var" / "secret.key").write_text("s" * 64 + "\n")
    return root


async def library_server(root: Path, **library: Any) -> tuple[web.AppRunner, RunningServer]:
    settings = make_settings(root, library={"process_delay": 0, **library})
    runner, server = await start_server(settings)
    return runner, server


async def get(url: str, **kwargs: Any) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status, await response.read(), dict(response.headers)


async def get_json(url: str, **kwargs: Any) -> tuple[int, Any]:
    status, body, _ = await get(url, **kwargs)
    return status, json.loads(body)


async def wait_ready(server: RunningServer, lesson: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = await get_json(f"{server.url}/api/library/{lesson}")
        if status == 200 and body["state"] == "ready":
            return dict(body)
        assert status in (200, 404), body
        assert status != 200 or body["state"] != "failed", body
        await asyncio.sleep(0.2)
    raise AssertionError(f"lesson {lesson} never became ready: {body}")


# -- a real lesson ---------------------------------------------------------------------


@pytest.mark.timeout(150)
async def test_a_recorded_lesson_with_a_reconnect_becomes_one_mp4_and_hls(
    tmp_path: Path,
) -> None:
    runner, server = await start_server(
        make_settings(tmp_path, library={"process_delay": 0}, recorder={"keyframe_interval": 2.0})
    )
    room = Classroom(server.url, server.token("geo", "classroom"))
    on_air = 0.0
    try:
        await room.join()
        await room.subscribe()
        for first in (1, 5000):
            teacher = Teacher(server.url, server.token("geo", "teacher"), first=first)
            await teacher.join()
            await teacher.publish()
            deadline = time.monotonic() + 20
            while not any(n >= first for n in room.numbers):
                assert time.monotonic() < deadline, "the classroom got no frames"
                await asyncio.sleep(0.02)
            on_air = on_air or time.monotonic()
            await asyncio.sleep(3.5)
            await teacher.close()
            await asyncio.sleep(1)
        # the lesson as the classrooms lived it: from the first picture to the end,
        # the reconnect included (the recorder keeps time across it)
        lesson_seconds = time.monotonic() - on_air - 1
        await room.close()
        entry = await wait_ready(server, "geo")
        status, page, _ = await get(f"{server.url}/library")
        assert status == 200 and 'data-lesson="geo"' in page.decode()
        status, page, _ = await get(f"{server.url}{entry['replay']}")
        assert status == 200 and "/library/geo/files/hls/master.m3u8" in page.decode()
    finally:
        await runner.cleanup()
    output = server.settings.data_path / "library" / "geo"
    manifest = json.loads((server.settings.data_path / "recordings/geo/archive.json").read_text())
    assert [s["reason"] for s in manifest["segments"]] == ["start", "reconnect"]
    probe = ffprobe(output / "lesson.mp4")
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"]
    duration = float(probe["format"]["duration"])
    assert abs(duration - lesson_seconds) < 1.0, (duration, lesson_seconds)
    recorded = sum(
        float(ffprobe(output.parent.parent / "recordings/geo" / s["file"])["format"]["duration"])
        for s in manifest["segments"]
    )
    assert abs(duration - recorded) < 0.5, (duration, recorded)  # joined end to end
    assert abs(entry["duration"] - lesson_seconds) < 1.0
    decoded = decode_all(output / "lesson.mp4")
    assert decoded.damaged == 0
    assert decoded.numbers == sorted(decoded.numbers)  # both parts, in order
    before = [n for n in decoded.numbers if n < 5000]
    after = [n for n in decoded.numbers if n >= 5000]
    for numbers in (before, after):
        assert numbers and len(set(numbers)) >= 0.95 * (numbers[-1] - numbers[0] + 1)
    # a 640x360 camera: its own size on top, no upscaled rung, and audio only
    master = (output / "hls" / "master.m3u8").read_text()
    assert [line for line in master.splitlines() if not line.startswith("#")] == [
        "360p/index.m3u8",
        "audio/index.m3u8",
    ]
    video = decode_all(output / "hls" / "360p" / "index.m3u8")
    assert video.numbers == sorted(video.numbers) and video.damaged == 0
    assert len(set(video.numbers)) == len(set(decoded.numbers))
    assert decode_all(output / "hls" / "audio" / "index.m3u8").audio_samples > 48000 * 5


@pytest.mark.timeout(150)
async def test_kill_9_mid_lesson_leaves_an_archive_that_reprocesses(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path / "var"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--host=127.0.0.1",
        f"--port={port}",
        "--ice-address=127.0.0.1",
        f"--data-dir={data}",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), 20)
        from server.tokens import Tokens, load_or_create_secret

        tokens = Tokens(load_or_create_secret(data))
        teacher = Teacher(f"http://127.0.0.1:{port}", tokens.issue("bio", "teacher", "t", 600))
        await teacher.join()
        await teacher.publish()
        await teacher.wait_connected()
        await asyncio.sleep(6)
        sent_before_kill = teacher.video.sent
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        await teacher.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert json.loads((data / "recordings/bio/archive.json").read_text())["state"] == "recording"
    done = await asyncio.to_thread(zhuandi, "library", "reprocess", f"--data-dir={data}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bio 100.0%" in done.stdout and " mp4" in done.stdout  # the progress lines
    output = data / "library" / "bio"
    probe = ffprobe(output / "lesson.mp4")
    assert sorted(s["codec_name"] for s in probe["streams"]) == ["aac", "h264"]
    decoded = decode_all(output / "lesson.mp4")
    assert decoded.numbers and decoded.numbers == sorted(decoded.numbers)
    lost = (sent_before_kill - max(decoded.numbers)) / 30
    print(f"seconds of lesson lost to kill -9: {lost:.2f}")
    assert lost <= 3.0
    for name in ("360p", "audio"):
        assert ffprobe(output / "hls" / name / "index.m3u8")["streams"]
    assert decode_all(output / "hls" / "360p" / "index.m3u8").numbers == decoded.numbers
    listed = zhuandi("library", "list", f"--data-dir={data}")
    assert "bio" in listed.stdout and "ready" in listed.stdout


@pytest.mark.timeout(60)
async def test_start_up_processes_archives_left_without_renditions(
    prepared: Path, tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    copy_data(prepared, root)
    (root / "var" / "library" / "poem1" / "renditions.json").unlink()
    runner, server = await library_server(root)
    try:
        entry = await wait_ready(server, "poem1", timeout=45)
        assert entry["duration"] and abs(entry["duration"] - 2.0) < 1.0
        assert entry["title"] == "静夜思"  # the catalog kept its metadata
    finally:
        await runner.cleanup()


# -- search and pages --------------------------------------------------------------------


def ids(body: dict) -> list[str]:
    return [lesson["id"] for lesson in body["lessons"]]


@pytest.mark.timeout(60)
async def test_the_api_searches_by_subject_grade_teacher_school_date_and_text(
    prepared: Path, tmp_path: Path
) -> None:
    runner, server = await library_server(copy_data(prepared, tmp_path / "copy"))
    try:
        api = f"{server.url}/api/library"
        cases = {
            "": ["poem1", "alg1"],  # newest first; the private lesson is not listed
            "subject=数学": ["alg1"],
            "grade=二年级": ["poem1"],
            "teacher=王老师": ["alg1"],
            "school=希望小学": ["poem1"],
            "date=2026-03-02": ["alg1"],
            "from=2026-03-03&to=2026-12-31": ["poem1"],
            "q=方程": ["alg1"],
            "q=静夜": ["poem1"],
            "tag=古诗": ["poem1"],
            "subject=数学&grade=二年级": [],
            "limit=1": ["poem1"],
            "limit=1&offset=1": ["alg1"],
        }
        for query, expected in cases.items():
            status, body = await get_json(f"{api}?{query}")
            assert status == 200 and ids(body) == expected, (query, body)
        status, body = await get_json(f"{api}?date=March")
        assert status == 400 and body["error"] == "bad_query"
        status, body = await get_json(f"{api}?subject=数学")
        lesson = body["lessons"][0]
        assert lesson["tags"] == ["代数", "方程"] and lesson["visibility"] == "public"
        assert lesson["files"]["mp4"] == "/library/alg1/files/lesson.mp4"
        assert {r["name"] for r in lesson["renditions"]} == {"360p", "audio"}
        status, page, _ = await get(f"{server.url}/library?subject=语文&lang=en")
        text = page.decode()
        assert status == 200 and 'data-lesson="poem1"' in text and "alg1" not in text
        assert "Lesson library" in text
    finally:
        await runner.cleanup()


@pytest.mark.timeout(60)
async def test_job_progress_shows_in_the_api_and_on_the_library_page(
    prepared: Path, tmp_path: Path
) -> None:
    root = copy_data(prepared, tmp_path / "copy")
    runner, server = await library_server(root, process_after_lesson=False)
    try:
        library = server.app[LIBRARY]
        library.set_state("alg1", "processing")
        status_file = root / "var" / "library" / "alg1" / STATUS
        status = json.loads(status_file.read_text())
        status.update(state="running", stage="hls-360p", percent=42.5)
        status_file.write_text(json.dumps(status))
        _, body = await get_json(f"{server.url}/api/library?q=方程")
        assert body["lessons"][0]["state"] == "processing"
        assert body["lessons"][0]["progress"] == {"stage": "hls-360p", "percent": 42.5}
        _, page, _ = await get(f"{server.url}/library")
        assert '<progress class="job-progress" max="100" value="42.5">' in page.decode()
        assert "42.5%" in page.decode()
    finally:
        await runner.cleanup()


# -- visibility, paths, ranges -------------------------------------------------------


@pytest.mark.timeout(60)
async def test_a_private_lesson_needs_its_token_also_through_file_urls(
    prepared: Path, tmp_path: Path
) -> None:
    runner, server = await library_server(copy_data(prepared, tmp_path / "copy"))
    try:
        base = server.url
        own = server.token("secret1", "observer")
        other = server.token("alg1", "observer")
        expired = server.tokens.issue("secret1", "observer", "x", -10)
        files = [
            "/library/secret1/files/lesson.mp4",
            "/library/secret1/files/hls/master.m3u8",
            "/library/secret1/files/hls/360p/index.m3u8",
            "/library/secret1/files/hls/360p/seg-00000.ts",
            "/library/secret1/files/thumbnail.jpg",
            "/api/library/secret1",
        ]
        for path in files:
            assert (await get(base + path))[0] == 401, path
            assert (await get(f"{base}{path}?token={expired}"))[0] == 401, path
            assert (await get(f"{base}{path}?token={other}"))[0] == 403, path
            assert (await get(f"{base}{path}?token={own}"))[0] == 200, path
        bearer = {"Authorization": f"Bearer {own}"}
        assert (await get(base + files[0], headers=bearer))[0] == 200
        # not listed without its token; listed with it
        _, body = await get_json(f"{base}/api/library")
        assert "secret1" not in ids(body)
        _, body = await get_json(f"{base}/api/library?token={own}")
        assert "secret1" in ids(body)
        lesson = next(x for x in body["lessons"] if x["id"] == "secret1")
        assert lesson["files"]["hls"].endswith(f"?token={own}")
        # the playlists carry the token into every URL a player follows
        status, master, _ = await get(f"{base}/library/secret1/files/hls/master.m3u8?token={own}")
        uris = [x for x in master.decode().splitlines() if x and not x.startswith("#")]
        assert uris and all(u.endswith(f"?token={own}") for u in uris)
        status, playlist, _ = await get(f"{base}/library/secret1/files/hls/{uris[0]}")
        segments = [x for x in playlist.decode().splitlines() if x and not x.startswith("#")]
        assert status == 200 and segments
        status, _, _ = await get(f"{base}/library/secret1/files/hls/360p/{segments[0]}")
        assert status == 200
        # not even its metadata shows in the list page's search suggestions
        _, page, _ = await get(f"{base}/library")
        assert "八年级" not in page.decode() and "教研课" not in page.decode()
        # the replay page refuses, in words
        status, page, _ = await get(f"{base}/library/secret1")
        assert status == 401 and 'data-code="private_lesson"' in page.decode()
        status, page, _ = await get(f"{base}/library/secret1?token={own}")
        assert status == 200 and "教研课" in page.decode()
        # public and district lessons need nothing
        assert (await get(f"{base}/library/alg1/files/lesson.mp4"))[0] == 200
        assert (await get(f"{base}/library/poem1/files/lesson.mp4"))[0] == 200
    finally:
        await runner.cleanup()


async def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """A request sent byte for byte as written (no client normalizes it)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.timeout(60)
async def test_paths_outside_a_lesson_are_refused_whatever_the_encoding(
    prepared: Path, tmp_path: Path
) -> None:
    root = copy_data(prepared, tmp_path / "copy")
    data = root / "var"
    secret = (data / "secret.key").read_bytes()
    alg1 = data / "library" / "alg1"
    (alg1 / "out.mp4").symlink_to(data / "library" / "secret1" / "lesson.mp4")
    (alg1 / "key.jpg").symlink_to(data / "secret.key")
    (alg1 / "hls" / "up.ts").symlink_to(data / "recordings" / "alg1" / "segment-0001.mkv")
    private_mp4 = (data / "library" / "secret1" / "lesson.mp4").read_bytes()
    runner, server = await library_server(root)
    try:
        base = "/library/alg1/files/"
        attempts = [
            base + "../../secret.key",
            base + "..%2f..%2fsecret.key",
            base + "%2e%2e/%2e%2e/secret.key",
            base + "%2E%2E%2F%2E%2E%2Fzhuandi.db",
            base + "..%5c..%5csecret.key",
            base + "%252e%252e/%252e%252e/secret.key",
            base + "..%252f..%252fsecret.key",
            base + "hls/../../secret1/lesson.mp4",
            base + "..%2Fsecret1%2Flesson.mp4",
            base + "%2e%2e/secret1/lesson.mp4",
            base + ".%2e/secret1/lesson.mp4",
            "/library/..%2Fsecret1/files/lesson.mp4",
            "/library/%2e%2e/secret1/files/lesson.mp4",
            base + "%2Fetc%2Fpasswd",
            base + "/etc/passwd",
            base + "status.json",
            base + ".lock",
            base + "out.mp4",  # symlinks out of the lesson
            base + "key.jpg",
            base + "hls/up.ts",
            base + "lesson.mp4%00.jpg",
            base + "hls\\..\\..\\secret1\\lesson.mp4",
        ]
        for path in attempts:
            status, body = await raw_get(server.url, path)
            assert status in (400, 401, 403, 404), (path, status)
            assert secret not in body and private_mp4[:4096] not in body, path
        assert (await raw_get(server.url, base + "lesson.mp4"))[0] == 200
        assert (await raw_get(server.url, base + "lesson.mp4?x=%2e%2e"))[0] == 200
    finally:
        await runner.cleanup()


@pytest.mark.timeout(60)
async def test_files_are_served_with_range_requests(prepared: Path, tmp_path: Path) -> None:
    runner, server = await library_server(copy_data(prepared, tmp_path / "copy"))
    try:
        url = f"{server.url}/library/alg1/files/lesson.mp4"
        whole = (server.settings.data_path / "library" / "alg1" / "lesson.mp4").read_bytes()
        size = len(whole)
        status, body, headers = await get(url, headers={"Range": "bytes=0-99"})
        assert status == 206 and body == whole[:100]
        assert headers["Content-Range"] == f"bytes 0-99/{size}"
        status, body, headers = await get(url, headers={"Range": "bytes=1000-1999"})
        assert status == 206 and body == whole[1000:2000]
        status, body, _ = await get(url, headers={"Range": "bytes=-500"})
        assert status == 206 and body == whole[-500:]
        status, _, headers = await get(url, headers={"Range": f"bytes={size + 10}-"})
        assert status == 416
        status, body, headers = await get(url)
        assert status == 200 and body == whole
        assert headers["Accept-Ranges"] == "bytes" and headers["Content-Type"] == "video/mp4"
        async with aiohttp.ClientSession() as session, session.head(url) as response:
            assert response.status == 200 and int(response.headers["Content-Length"]) == size
        _, _, headers = await get(f"{server.url}/library/alg1/files/hls/master.m3u8")
        assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
        _, _, headers = await get(f"{server.url}/library/alg1/files/hls/360p/seg-00000.ts")
        assert headers["Content-Type"] == "video/mp2t"
    finally:
        await runner.cleanup()


# -- the CLI ----------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_the_cli_lists_shows_exports_and_imports_lessons(prepared: Path, tmp_path: Path) -> None:
    data = copy_data(prepared, tmp_path / "copy") / "var"
    listed = zhuandi("library", "list", f"--data-dir={data}")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["secret1", "poem1", "alg1"]
    listed = zhuandi("library", "list", f"--data-dir={data}", "--teacher=王老师", "--json")
    assert [x["id"] for x in json.loads(listed.stdout)] == ["secret1", "alg1"]
    shown = zhuandi("library", "show", "alg1", f"--data-dir={data}", "--json")
    info = json.loads(shown.stdout)
    assert info["title"] == "一元一次方程" and info["job"]["state"] == "done"
    assert zhuandi("library", "show", "nope", f"--data-dir={data}").returncode == 1
    assert zhuandi("library", "set", "alg1", "--date=yesterday", f"--data-dir={data}").returncode
    # nothing to do when current; --force redoes it
    again = zhuandi("library", "reprocess", "alg1", f"--data-dir={data}")
    assert again.returncode == 0 and "current: nothing to do" in again.stdout
    # export, then import on another server's (empty) data directory
    exports = tmp_path / "exports"
    done = zhuandi(
        "library", "export", "alg1", str(exports), "--with-archive", f"--data-dir={data}"
    )
    assert done.returncode == 0, done.stderr
    metadata = json.loads((exports / "alg1" / "lesson.json").read_text())
    assert metadata["lesson"]["subject"] == "数学"
    listed_files = {f["path"] for f in metadata["files"]}
    assert {"lesson.mp4", "renditions.json", "hls/master.m3u8", "archive/archive.json"} <= (
        listed_files
    )
    assert "status.json" not in listed_files
    other = tmp_path / "other" / "var"
    done = zhuandi("library", "import", str(exports / "alg1"), f"--data-dir={other}")
    assert done.returncode == 0, done.stderr
    assert (other / "library/alg1/lesson.mp4").read_bytes() == (
        data / "library/alg1/lesson.mp4"
    ).read_bytes()
    info = json.loads(zhuandi("library", "show", "alg1", f"--data-dir={other}", "--json").stdout)
    assert info["state"] == "ready" and info["teacher"] == "王老师" and info["duration"]
    # the imported archive and renditions agree: nothing to reprocess
    again = zhuandi("library", "reprocess", "alg1", f"--data-dir={other}")
    assert "current: nothing to do" in again.stdout
    # twice is refused, unless under another id
    assert zhuandi("library", "import", str(exports / "alg1"), f"--data-dir={other}").returncode
    done = zhuandi("library", "import", str(exports / "alg1"), "--as=alg1b", f"--data-dir={other}")
    assert done.returncode == 0 and (other / "library/alg1b/hls/master.m3u8").is_file()
    # a damaged or hostile export is refused, and leaves nothing behind
    damaged = copy_data(exports / "alg1", tmp_path / "damaged")
    with (damaged / "lesson.mp4").open("r+b") as handle:
        handle.seek(2000)
        handle.write(b"\x00\x01\x02")
    done = zhuandi("library", "import", str(damaged), "--as=bad1", f"--data-dir={other}")
    assert done.returncode == 1 and "damaged" in done.stderr
    hostile = copy_data(exports / "alg1", tmp_path / "hostile")
    meta = json.loads((hostile / "lesson.json").read_text())
    meta["files"].append({"path": "../../secret.key", "size": 1, "sha256": "0"})
    (hostile / "lesson.json").write_text(json.dumps(meta))
    done = zhuandi("library", "import", str(hostile), "--as=bad2", f"--data-dir={other}")
    assert done.returncode == 1 and "refused file name" in done.stderr
    assert not (other / "library" / "bad1").exists() and not (other / "library" / "bad2").exists()
