"""The library through the real server: a recorded lesson becomes an MP4 and an HLS
ladder, kill -9 leaves an archive that reprocesses, start-up takes up what is left,
search, and job progress."""

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from recorder.status import STATUS
from server.keys import LIBRARY
from tests.conftest import make_settings, start_server
from tests.libraries import (
    ROOT,
    closing_at_once,
    copy_data,
    get,
    get_json,
    ids,
    library_server,
    prepare_catalog,
    wait_ready,
    zhuandi,
)
from tests.media_probe import decode_all, ffprobe
from tests.peers import Classroom, Teacher


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory (its parent is what make_settings takes) with three lessons."""
    return prepare_catalog(tmp_path_factory.mktemp("prepared"))


# -- a real lesson ---------------------------------------------------------------------


@pytest.mark.timeout(150)
async def test_a_recorded_lesson_with_a_reconnect_becomes_one_mp4_and_hls(
    tmp_path: Path,
) -> None:
    runner, server = await start_server(
        make_settings(
            tmp_path,
            library={"process_delay": 0},
            recorder={"keyframe_interval": 2.0},
            server=closing_at_once(),
        )
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
    assert "bio 100.0%" in done.stdout and "bio done in" in done.stdout  # the progress lines
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
