"""Every lesson is recorded as it was sent, into one archive, and survives crashes."""

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RunningServer, make_settings, start_server
from tests.media_probe import decode_all, ffprobe
from tests.peers import Classroom, Teacher

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parent.parent


def archive_dir(server: RunningServer, lesson: str) -> Path:
    return server.settings.data_path / "recordings" / lesson


def manifest(directory: Path) -> dict:
    return json.loads((directory / "archive.json").read_text())


async def wait_closed(server: RunningServer, lesson: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while server.lessons.get(lesson) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError("the lesson did not close")
        await asyncio.sleep(0.1)


async def test_a_lesson_is_recorded_as_sent_and_plays_back_in_order(
    tmp_path: Path,
) -> None:
    runner, server = await start_server(
        make_settings(tmp_path, recorder={"keyframe_interval": 2.0})
    )
    teacher = Teacher(server.url, server.token("physics", "teacher"))
    room = Classroom(server.url, server.token("physics", "classroom"))
    try:
        await teacher.join()
        await room.join()
        await room.subscribe()
        await teacher.publish()
        await room.wait_frames(10)
        started = time.monotonic()
        await asyncio.sleep(6)
        lesson_seconds = time.monotonic() - started
    finally:
        await teacher.close()
        await room.close()
        await wait_closed(server, "physics")
        await runner.cleanup()
    directory = archive_dir(server, "physics")
    info = manifest(directory)
    assert info["state"] == "finished"
    assert [s["reason"] for s in info["segments"]] == ["start"]
    segment = directory / info["segments"][0]["file"]
    probe = ffprobe(segment)
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["opus", "vp8"]
    duration = float(probe["format"]["duration"])
    assert abs(duration - lesson_seconds) < 1.5, (duration, lesson_seconds)
    decoded = decode_all(segment)
    assert decoded.damaged == 0
    assert decoded.sizes == {(640, 360)}
    assert decoded.numbers == sorted(decoded.numbers)
    span = decoded.numbers[-1] - decoded.numbers[0] + 1
    assert len(decoded.numbers) >= 0.98 * span
    assert decoded.audio_samples > 48000 * (lesson_seconds - 1)
    # the recorder asked for keyframes every 2 s: the file seeks
    gaps = [b - a for a, b in zip(decoded.keyframe_times, decoded.keyframe_times[1:], strict=False)]
    assert len(decoded.keyframe_times) >= 3 and max(gaps) < 3.5, decoded.keyframe_times


async def test_a_teacher_who_reconnects_continues_the_same_archive(server: RunningServer) -> None:
    first = Teacher(server.url, server.token("chem", "teacher"))
    room = Classroom(server.url, server.token("chem", "classroom"))
    await room.join()
    await room.subscribe()
    await first.join()
    await first.publish()
    await room.wait_frames(60)
    await first.close()
    await asyncio.sleep(1)
    second = Teacher(server.url, server.token("chem", "teacher"), first=5000)
    await second.join()
    await second.publish()
    deadline = time.monotonic() + 20
    while not any(n >= 5060 for n in room.numbers):
        assert time.monotonic() < deadline, "the classroom did not get the new teacher stream"
        await asyncio.sleep(0.1)
    await second.close()
    await room.close()
    await wait_closed(server, "chem")
    directory = archive_dir(server, "chem")
    info = manifest(directory)
    assert [s["reason"] for s in info["segments"]] == ["start", "reconnect"]
    files = sorted(p.name for p in directory.iterdir() if p.name.startswith("segment-"))
    assert files == [s["file"] for s in info["segments"]]
    before, after = (decode_all(directory / s["file"]) for s in info["segments"])
    assert before.numbers and max(before.numbers) < 5000
    assert after.numbers and min(after.numbers) >= 5000
    assert before.damaged == after.damaged == 0
    # the classroom played through the reconnect, and never went backwards
    assert room.numbers == sorted(room.numbers)


async def test_the_teacher_can_turn_recording_off(server: RunningServer) -> None:
    teacher = Teacher(server.url, server.token("art", "teacher"))
    await teacher.join()
    await teacher.signalling.send({"type": "record", "on": False})
    await teacher.publish()
    await teacher.wait_connected()
    await asyncio.sleep(1.5)
    lesson = server.lessons.get("art")
    assert lesson is not None and lesson.recording is None
    room = Classroom(server.url, server.token("art", "classroom"))
    await room.join()
    await room.signalling.send({"type": "record", "on": True})
    error = await room.signalling.wait_for("error")
    assert error["code"] == "forbidden"
    await room.close()
    await teacher.close()
    await wait_closed(server, "art")
    assert not archive_dir(server, "art").exists()


async def test_kill_9_loses_at_most_the_last_seconds(tmp_path: Path) -> None:
    """The server process dies mid-lesson; what is on disk still plays."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path / "var"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ice-address",
        "127.0.0.1",
        "--data-dir",
        str(data),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), 20)
        from server.tokens import Tokens, load_or_create_secret

        tokens = Tokens(load_or_create_secret(data))
        url = f"http://127.0.0.1:{port}"
        teacher = Teacher(url, tokens.issue("bio", "teacher", "t", 600))
        await teacher.join()
        await teacher.publish()
        await teacher.wait_connected()
        await asyncio.sleep(8)
        sent_before_kill = teacher.video.sent
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        await teacher.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    directory = data / "recordings" / "bio"
    segment = next(directory.glob("segment-*.mkv"))
    decoded = decode_all(segment)
    assert decoded.numbers, "nothing playable survived the kill"
    assert decoded.numbers == sorted(decoded.numbers)
    lost_frames = sent_before_kill - max(decoded.numbers)
    assert lost_frames <= 3 * 30, f"{lost_frames / 30:.1f} s lost to the kill"
