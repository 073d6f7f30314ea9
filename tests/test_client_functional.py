"""`zhuandi classroom`, the real CLI in a subprocess, against the real server: it
records what a teacher sends, publishes a file as a teacher, refuses bad tokens,
leaves cleanly on SIGTERM and comes back after the server restarts."""

import asyncio
import contextlib
import fractions
import itertools
import re
import signal
import time
from pathlib import Path

import av
import numpy as np
import pytest

from server.client_args import ClientError, parse_join_url
from tests.cli import Cli, recorded_count, run_cli
from tests.conftest import RunningServer, make_settings, start_server
from tests.frames import AUDIO_RATE, numbered_image, tone_present
from tests.media_probe import ffprobe, recorded_audio, stream, undamaged_frames
from tests.peers import Classroom, LayoutPeer, Teacher

TOP = 360  # the teacher's own stream, forwarded as sent


def runs(numbers: list[int]) -> list[list[int]]:
    """Split where the numbers go back (a new teacher, or the clip starting over)."""
    return [[n for n, _ in run] for run in frame_runs([(n, 0) for n in numbers])]


def frame_runs(frames: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    result: list[list[tuple[int, int]]] = []
    for frame in frames:
        if result and frame[0] >= result[-1][-1][0]:
            result[-1].append(frame)
        else:
            result.append([frame])
    return result


def assert_few_gaps(frames: list[tuple[int, int]], share: float = 0.95) -> None:
    """(number, height) in file order: in order, and few frames missing beyond what
    each layer drops by design. The server adapts every classroom's video to its line
    (aiortc's early REMB is often low enough for a switch): its 180p layer runs at
    15 fps, and a switch's first keyframe may show the last frame again."""
    numbers = [number for number, _ in frames]
    assert numbers == sorted(numbers), "frame numbers out of order"
    switches = sum(a[1] != b[1] for a, b in itertools.pairwise(frames))
    assert len(numbers) - len(set(numbers)) <= 2 + switches, "frames repeated"
    full = [(a, b) for (a, ha), (b, hb) in itertools.pairwise(frames) if ha == hb == TOP]
    missing = sum(max(b - a - 1, 0) for a, b in full)
    assert missing <= (1 - share) * (len(full) + missing), f"{missing} of the 360p frames lost"
    span = numbers[-1] - numbers[0] + 1
    assert len(set(numbers)) >= 0.45 * span, f"too many gaps: {len(set(numbers))} of {span}"


def assert_in_order(numbers: list[int], share: float) -> None:
    assert numbers == sorted(numbers), "frame numbers out of order"
    span = numbers[-1] - numbers[0] + 1
    assert len(set(numbers)) >= share * span, f"too many gaps: {len(set(numbers))} of {span}"


# -- tests -----------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_the_cli_records_what_the_teacher_sends(
    server: RunningServer, tmp_path: Path
) -> None:
    teacher = Teacher(server.url, server.token("maths", "teacher"), tone=440.0)
    out = tmp_path / "lesson.mkv"
    try:
        await teacher.join()
        await teacher.publish()
        await teacher.wait_connected()
        url = server.page("maths", "classroom", "接收教室 1")
        cli = await run_cli(url, "--record", str(out), "--duration", "8")
    finally:
        await teacher.close()

    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "live" in cli.stdout and "recorded" in cli.stdout
    info = ffprobe(out)
    video, audio = stream(info, "video"), stream(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("vp8", 640, 360)
    assert (audio["codec_name"], audio["sample_rate"]) == ("opus", "48000")
    # from the first keyframe to the end; never more than 1.5 s past the wall clock
    assert 6.0 <= float(info["format"]["duration"]) <= 9.5
    frames = undamaged_frames(out)
    assert len(frames) == recorded_count(cli)  # all that arrived, nothing else
    assert len(frames) >= 4 * 30
    assert_few_gaps(frames)
    sound = recorded_audio(out)
    assert len(sound) >= 6 * AUDIO_RATE
    assert tone_present(sound[-2 * AUDIO_RATE :], AUDIO_RATE, 440.0)


@pytest.mark.timeout(90)
async def test_an_h264_lesson_records_to_fragmented_mp4(tmp_path: Path) -> None:
    runner, server = await start_server(make_settings(tmp_path, media={"video_codec": "H264"}))
    teacher = Teacher(server.url, server.token("maths", "teacher"))
    out = tmp_path / "lesson.mp4"
    try:
        await teacher.join()
        await teacher.publish()
        await teacher.wait_connected()
        cli = await run_cli(
            server.page("maths", "classroom"), "--record", str(out), "--duration", "7"
        )
    finally:
        await teacher.close()
        await runner.cleanup()

    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "640x360" in cli.stdout
    info = ffprobe(out)
    assert "mp4" in info["format"]["format_name"]
    video = stream(info, "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert stream(info, "audio")["codec_name"] == "opus"
    frames = undamaged_frames(out)
    assert len(frames) == recorded_count(cli)
    assert len(frames) >= 2 * 30  # x264 in the teacher is slow on a busy machine
    assert_few_gaps(frames)


def make_clip(path: Path, frames: int = 90, tone: float = 660.0) -> None:
    """A 3 s WebM: VP8 frames numbered 1..frames at 30 fps, and an Opus tone."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libvpx", rate=30)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        video.bit_rate = 800_000
        audio = container.add_stream("libopus", rate=AUDIO_RATE)
        audio.layout = "mono"
        for number in range(1, frames + 1):
            frame = av.VideoFrame.from_ndarray(numbered_image(number), format="rgb24")
            frame.pts, frame.time_base = number - 1, fractions.Fraction(1, 30)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        step = AUDIO_RATE // 50
        for index in range(frames * 50 // 30):
            t = (np.arange(step) + index * step) / AUDIO_RATE
            wave = (np.sin(2 * np.pi * tone * t) * 9000).astype(np.int16).reshape(1, -1)
            sound = av.AudioFrame.from_ndarray(wave, format="s16", layout="mono")
            sound.sample_rate, sound.pts = AUDIO_RATE, index * step
            sound.time_base = fractions.Fraction(1, AUDIO_RATE)
            container.mux(audio.encode(sound))
        container.mux(audio.encode(None))


@pytest.mark.timeout(90)
async def test_the_cli_publishes_a_file_as_the_teacher(
    server: RunningServer, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.webm"
    make_clip(clip)
    classroom = Classroom(server.url, server.token("maths", "classroom"))
    cli = Cli(server.page("maths", "teacher"), "--publish", str(clip), "--duration", "60")
    try:
        await classroom.join()
        await classroom.subscribe()
        await cli.start()
        deadline = time.monotonic() + 45
        while len(runs(classroom.numbers)) < 3:  # a whole pass, between two others
            assert time.monotonic() < deadline, f"{len(classroom.numbers)} frames arrived"
            await asyncio.sleep(0.1)
        await cli.wait_line("sent video")
        cli.signal(signal.SIGTERM)
        assert await cli.wait() == 0, cli.stdout + cli.stderr
    finally:
        await cli.kill()
        await classroom.close()

    assert "live" in cli.stdout and "sent video" in cli.stdout
    assert (640, 360) in classroom.sizes  # and maybe a lower layer, see assert_few_gaps
    assert classroom.damaged <= 2
    passes = runs(classroom.numbers)
    for numbers in passes:
        assert 1 <= numbers[0] and numbers[-1] <= 90
    whole = passes[1]  # the first may have begun before the classroom saw it
    assert whole[0] <= 3 and whole[-1] >= 85, whole
    assert_in_order(whole, share=0.45)
    audio = classroom.audio()
    assert tone_present(audio[-AUDIO_RATE * 2 :], classroom.audio_rate, 660.0)


@pytest.mark.timeout(90)
async def test_a_classroom_cli_sends_a_file_up_and_records_the_teacher(
    server: RunningServer, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.webm"
    make_clip(clip)
    out = tmp_path / "teacher.mkv"
    layout = ["send:microphone", "send:camera", "receive:grid", "receive:classroom-mix"]
    teacher = LayoutPeer(server.url, server.token("maths", "teacher"), layout, first=1000)
    url = server.page("maths", "classroom", "接收教室 1")
    cli = Cli(url, "--publish", str(clip), "--record", str(out), "--duration", "60")
    try:
        await teacher.join()
        await teacher.start()
        await cli.start()
        # the teacher's grid shows the classroom's clip: a whole pass of it
        await teacher.wait_numbers("grid1", lambda n: len(runs(n)) >= 3, timeout=45)
        cli.signal(signal.SIGTERM)
        assert await cli.wait() == 0, cli.stdout + cli.stderr
        mix = teacher.samples("classroom-mix", 2.0)
    finally:
        await cli.kill()
        await teacher.close()

    assert "sent video" in cli.stdout and "received video" in cli.stdout
    passes = runs(teacher.numbers["grid1"])
    assert all(1 <= p[0] and p[-1] <= 90 for p in passes), [(p[0], p[-1]) for p in passes]
    # a whole pass, between two others; a grid tile is a small layer that drops
    # frames first when the machine is busy
    assert passes[1][-1] - passes[1][0] >= 60, passes[1]
    assert len(set(passes[1])) >= 15, passes[1]
    assert tone_present(mix, AUDIO_RATE, 660.0), "the classroom's tone is not in the mix"
    frames = undamaged_frames(out)  # the teacher's camera, numbered from 1000
    assert len(frames) == recorded_count(cli)
    assert len(frames) >= 60 and all(n >= 1000 for n, _ in frames)
    assert_few_gaps(frames)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["expired", "forged", "wrong role"])
async def test_a_bad_token_ends_the_cli_with_a_clear_message(
    server: RunningServer, kind: str
) -> None:
    if kind == "expired":
        token = server.tokens.issue("maths", "classroom", "late", -60)
        code = "token_expired"
    elif kind == "forged":
        token = "eyJhbGciOiJIUzI1NiJ9.eyJsZXNzb24iOiJtYXRocyJ9.forged"
        code = "token_invalid"
    else:  # an observer token on a classroom link
        token = server.token("maths", "observer")
        code = "token_wrong_role"
    cli = await run_cli(f"{server.url}/lesson/maths/classroom?token={token}", "--duration", "20")
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "the join link was refused" in cli.stderr and code in cli.stderr
    assert "reconnecting" not in cli.stdout


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://127.0.0.1:1/lesson/maths"], "not a join URL"),
        (["http://127.0.0.1:1/lesson/maths/classroom"], "no token"),
        (
            ["http://127.0.0.1:1/lesson/maths/observer?token=t", "--publish", "clip.webm"],
            "an observer only receives",
        ),
        (["http://127.0.0.1:1/lesson/maths/teacher?token=t"], "needs --publish"),
        (["http://127.0.0.1:1/lesson/maths/observer?token=t", "--record", "a.mp3"], ".mp3"),
    ],
)
async def test_usage_errors_exit_2_before_connecting(args: list[str], message: str) -> None:
    cli = await run_cli(*args)
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert message in cli.stderr


@pytest.mark.timeout(60)
async def test_sigterm_leaves_and_finishes_the_recording(
    server: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "lesson.mkv"
    cli = await Cli(server.page("maths", "classroom"), "--record", str(out)).start()
    teacher = Teacher(server.url, server.token("maths", "teacher"))
    try:
        await cli.wait_line("waiting for the teacher")
        await teacher.join()
        await teacher.publish()
        await cli.wait_line("live")
        await asyncio.sleep(4)
        cli.signal(signal.SIGTERM)
        assert await cli.wait() == 0, cli.stdout + cli.stderr
        await wait_roles(server, "maths", ["teacher"])  # the classroom left
    finally:
        await cli.kill()
        await teacher.close()

    assert "SIGTERM: leaving the lesson" in cli.stdout
    info = ffprobe(out)
    assert float(info["format"]["duration"]) >= 3.0  # written by a clean close only
    frames = undamaged_frames(out)
    assert len(frames) == recorded_count(cli)
    assert len(frames) >= 60
    assert_few_gaps(frames)


@pytest.mark.timeout(60)
async def test_a_killed_cli_leaves_a_recording_that_plays(
    server: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "lesson.mkv"
    teacher = Teacher(server.url, server.token("maths", "teacher"))
    cli = Cli(server.page("maths", "classroom"), "--record", str(out))
    try:
        await teacher.join()
        await teacher.publish()
        await cli.start()
        await cli.wait_line("recorded ")  # the first progress line, after 5 s
        cli.signal(signal.SIGKILL)  # no chance to finish the file
        assert await cli.wait() == -signal.SIGKILL
    finally:
        await cli.kill()
        await teacher.close()

    progress = next(line for line in cli.lines if "recorded " in line)
    match = re.search(r"recorded (\d+)/(\d+)", progress)
    assert match is not None, progress
    video_frames, audio_packets = int(match[1]), int(match[2])
    assert video_frames >= 60, progress
    frames = undamaged_frames(out)
    # all that was recorded but the last two seconds at most: the cluster being
    # written, and what FFmpeg held back to interleave audio with later video
    assert len(frames) >= video_frames - 2 * 30, (len(frames), progress)
    assert_few_gaps(frames)
    audio_frame = AUDIO_RATE // 50
    assert len(recorded_audio(out)) >= (audio_packets - 2 * 50) * audio_frame, progress


async def wait_roles(server: RunningServer, lesson_id: str, roles: list[str]) -> None:
    deadline = time.monotonic() + 5
    while True:
        lesson = server.lessons.get(lesson_id)
        present = sorted(p.role for p in lesson.peers.values()) if lesson else []
        if present == roles:
            return
        assert time.monotonic() < deadline, present
        await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_the_cli_offers_again_when_the_media_connection_drops(
    server: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "lesson.mkv"
    teacher = Teacher(server.url, server.token("maths", "teacher"))
    cli = Cli(server.page("maths", "classroom"), "--record", str(out), "--duration", "9")
    try:
        await teacher.join()
        await teacher.publish()
        await cli.start()
        await cli.wait_line("live")
        await asyncio.sleep(2)
        lesson = server.lessons.get("maths")
        assert lesson is not None
        (classroom,) = [p for p in lesson.peers.values() if p.role == "classroom"]
        await classroom.close_media()  # as if the server's side of it had failed
        await cli.wait_line("the media connection failed")
        assert await cli.wait() == 0, cli.stdout + cli.stderr
    finally:
        await cli.kill()
        await teacher.close()

    assert sum("live" in line for line in cli.lines) >= 2, cli.stdout
    frames = undamaged_frames(out)
    assert len(frames) == recorded_count(cli)
    assert len(frames) >= 3 * 30
    # one teacher throughout: in order, with one gap while the client offered again
    steps = [b[0] - a[0] for a, b in itertools.pairwise(frames)]
    cut = steps.index(max(steps)) + 1
    assert max(steps) <= 3 * 30, "the media came back too late"
    assert_few_gaps(frames[:cut])
    assert_few_gaps(frames[cut:])


@pytest.mark.timeout(120)
async def test_the_cli_comes_back_after_the_server_restarts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    runner, first = await start_server(settings)
    port = int(first.url.rsplit(":", 1)[1])
    out = tmp_path / "lesson.mkv"
    url = first.page("maths", "classroom")
    cli = await Cli(url, "--record", str(out), "--duration", "40").start()
    teacher = Teacher(first.url, first.token("maths", "teacher"))
    second_runner = None
    try:
        await teacher.join()
        await teacher.publish()
        await cli.wait_line("live")
        await asyncio.sleep(3)
        await teacher.close()
        await runner.cleanup()  # tells every socket "shutdown"
        await cli.wait_line("the server is restarting")

        restarted = make_settings(tmp_path, server={"port": port})
        second_runner, second = await start_server(restarted)
        teacher = Teacher(second.url, second.token("maths", "teacher"))
        await teacher.join()
        await teacher.publish()
        await cli.wait_line("reconnecting")
        deadline = time.monotonic() + 30
        while sum("live" in line for line in cli.lines) < 2:
            assert time.monotonic() < deadline, cli.stdout
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)
        cli.signal(signal.SIGINT)
        assert await cli.wait() == 0, cli.stdout + cli.stderr
    finally:
        await cli.kill()
        await teacher.close()
        if second_runner is not None:
            await second_runner.cleanup()
        with contextlib.suppress(Exception):
            await runner.cleanup()

    frames = undamaged_frames(out)
    assert len(frames) == recorded_count(cli)
    teachers = frame_runs(frames)
    assert len(teachers) == 2, [(r[0], r[-1], len(r)) for r in teachers]
    for run in teachers:
        assert len(run) >= 45
        assert_few_gaps(run)


def test_join_urls_are_read_as_zhuandi_token_prints_them() -> None:
    join = parse_join_url("https://school.example:8443/lesson/maths-3/observer?token=a.b.c")
    assert (join.origin, join.lesson, join.role, join.token) == (
        "https://school.example:8443",
        "maths-3",
        "observer",
        "a.b.c",
    )
    assert join.websocket == "wss://school.example:8443/ws"
    assert parse_join_url("http://10.0.0.2:8080/lesson/x/classroom?token=t").websocket == (
        "ws://10.0.0.2:8080/ws"
    )
    for bad in ("ftp://h/lesson/x/classroom?token=t", "http://h/x/classroom?token=t", "maths"):
        with pytest.raises(ClientError):
            parse_join_url(bad)


@pytest.mark.timeout(90)
async def test_the_cli_chooses_its_quality_and_raises_its_hand(
    server: RunningServer, tmp_path: Path
) -> None:
    teacher = Teacher(server.url, server.token("qa", "teacher"))
    out = tmp_path / "low.mkv"
    try:
        await teacher.join()
        await teacher.publish()
        await teacher.wait_connected()
        url = server.page("qa", "classroom", "村小")
        run = asyncio.ensure_future(
            run_cli(
                url, "--record", str(out), "--quality", "low", "--raise-hand", "--duration", "8"
            )
        )
        hands: list[str] = []
        for _ in range(100):
            lesson = server.lessons.get("qa")
            if lesson is not None and lesson.floor.hands:
                hands = [lesson.seat_name(seat) or "" for seat in lesson.floor.hands]
                break
            await asyncio.sleep(0.1)
        cli = await run
    finally:
        await teacher.close()
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert hands == ["村小"], "the raised hand did not reach the teacher's queue"
    frames = undamaged_frames(out)
    assert frames and {height for _, height in frames} == {180}, "not the low layer"
    numbers = [number for number, _ in frames]
    assert numbers == sorted(numbers)
