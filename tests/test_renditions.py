"""The after-lesson job on a real archive: an MP4 that plays anywhere, an HLS ladder,
a thumbnail, progress, resuming after kill -9, and nothing redone when current."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from recorder.archive import Archive
from recorder.renditions import archive_digest, outputs_current, read_result
from tests.archives import FakeClock, Part, make_archive, write_part, write_stage
from tests.media_probe import decode_all, ffprobe

ROOT = Path(__file__).resolve().parent.parent
PARTS = [Part(4.0, 1, 1280, 720), Part(2.0, 5000, 1280, 720)]
LESSON_SECONDS = sum(p.seconds for p in PARTS)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types, in file order."""
    boxes = []
    with path.open("rb") as handle:
        while header := handle.read(8):
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if size == 1:
                size = int.from_bytes(handle.read(8), "big") - 8
            boxes.append(kind)
            handle.seek(size - 8, os.SEEK_CUR)
    return boxes


def run_job(archive: Path, output: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recorder.process", str(archive), str(output), "--nice", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def status(output: Path) -> dict:
    try:
        return json.loads((output / "status.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two connections of a 720p teacher: frames 1.. then 5000.., 2 s apart."""
    return make_archive(tmp_path_factory.mktemp("recordings") / "maths", PARTS, lesson="maths")


@pytest.fixture(scope="module")
def library(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("library") / "maths"
    job = run_job(archive, output)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert out.strip() == "done"
    return output


@pytest.mark.timeout(180)
def test_the_mp4_is_h264_and_aac_with_its_index_first(library: Path) -> None:
    mp4 = library / "lesson.mp4"
    probe = ffprobe(mp4)
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (1280, 720)
    assert int(streams["audio"]["sample_rate"]) == 48000
    assert abs(float(probe["format"]["duration"]) - LESSON_SECONDS) < 1.0, probe["format"]
    boxes = top_level_boxes(mp4)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart


@pytest.mark.timeout(60)
def test_every_frame_of_the_mp4_decodes_and_both_parts_follow_in_order(library: Path) -> None:
    decoded = decode_all(library / "lesson.mp4")
    assert decoded.damaged == 0
    assert decoded.numbers == sorted(decoded.numbers)
    first = [n for n in decoded.numbers if n < 5000]
    second = [n for n in decoded.numbers if n >= 5000]
    assert len(set(first)) >= 0.98 * PARTS[0].seconds * 30
    assert len(set(second)) >= 0.98 * PARTS[1].seconds * 30
    assert decoded.audio_samples >= 48000 * (LESSON_SECONDS - 0.5)
    # keyframes every 2 s, for seeking and for HLS segments
    assert len(decoded.keyframe_times) >= LESSON_SECONDS // 2
    result = read_result(library)
    assert result is not None and len(result["joins"]) == 1
    assert abs(result["joins"][0] - PARTS[0].seconds) < 0.2  # the reconnect gap is closed


@pytest.mark.timeout(60)
def test_the_hls_ladder_has_720p_360p_and_audio_only_each_decodable(library: Path) -> None:
    master = (library / "hls" / "master.m3u8").read_text()
    playlists = [line for line in master.splitlines() if line and not line.startswith("#")]
    assert sorted(playlists) == ["360p/index.m3u8", "720p/index.m3u8", "audio/index.m3u8"]
    assert 'RESOLUTION=1280x720,CODECS="avc1.4d401f,mp4a.40.2"' in master
    assert 'RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"' in master
    sizes = {"720p": (1280, 720), "360p": (640, 360)}
    for name, size in sizes.items():
        playlist = library / "hls" / name / "index.m3u8"
        assert "#EXT-X-ENDLIST" in playlist.read_text()
        probe = ffprobe(playlist)
        codecs = sorted(s["codec_name"] for s in probe["streams"])
        assert codecs == ["aac", "h264"], (name, codecs)
        decoded = decode_all(playlist)
        assert decoded.sizes == {size}, name
        assert decoded.damaged == 0, name
        assert decoded.numbers == sorted(decoded.numbers), name
        assert len(set(decoded.numbers)) >= 0.98 * LESSON_SECONDS * 30, name
        assert abs(float(probe["format"]["duration"]) - LESSON_SECONDS) < 1.0, name
    audio = library / "hls" / "audio" / "index.m3u8"
    probe = ffprobe(audio)
    assert [s["codec_name"] for s in probe["streams"]] == ["aac"]
    assert decode_all(audio).audio_samples >= 48000 * (LESSON_SECONDS - 0.5)
    result = read_result(library)
    assert result is not None
    rungs = {r["name"]: r for r in result["renditions"]}
    assert rungs["audio"]["bandwidth"] < 120_000  # a slow line can follow it


@pytest.mark.timeout(30)
def test_the_thumbnail_and_duration_are_recorded(library: Path) -> None:
    thumbnail = library / "thumbnail.jpg"
    assert thumbnail.read_bytes()[:2] == b"\xff\xd8"
    with av.open(str(thumbnail)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (320, 180)
    result = read_result(library)
    assert result is not None
    assert abs(result["duration"] - LESSON_SECONDS) < 1.0
    assert result["thumbnail"] == "thumbnail.jpg"
    done = status(library)
    assert done["state"] == "done" and done["percent"] == 100.0
    assert done["done"] == done["stages"]


@pytest.mark.timeout(30)
def test_a_second_run_does_nothing(archive: Path, library: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in library.rglob("*") if p.is_file()}
    job = run_job(archive, library)
    out, err = job.communicate(timeout=30)
    assert job.returncode == 0, err
    assert out.strip() == "current"
    after = {p: p.stat().st_mtime_ns for p in library.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.timeout(30)
def test_an_archive_that_gains_a_segment_is_no_longer_current(
    archive: Path, library: Path, tmp_path: Path
) -> None:
    assert outputs_current(archive, library)
    copy = tmp_path / "maths"
    copy.mkdir()
    for path in archive.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert archive_digest(copy) == archive_digest(archive)
    manifest = json.loads((copy / "archive.json").read_text())
    extra = dict(manifest["segments"][-1], file="segment-0003.mkv", reason="reconnect")
    (copy / "segment-0003.mkv").write_bytes((copy / "segment-0002.mkv").read_bytes())
    manifest["segments"].append(extra)
    (copy / "archive.json").write_text(json.dumps(manifest))
    assert archive_digest(copy) != archive_digest(archive)
    assert not outputs_current(copy, library)


@pytest.mark.timeout(180)
def test_a_killed_job_shows_progress_and_resumes_where_it_stopped(
    archive: Path, tmp_path: Path
) -> None:
    output = tmp_path / "maths"
    # 1. killed in the middle of the MP4: nothing half-written is taken for done
    job = run_job(archive, output)
    seen = wait_for(output, lambda s: s.get("stage") == "mp4" and 5 < s.get("percent", 0), job)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert 0 < seen["percent"] < 100 and seen["state"] == "running"
    assert not (output / "lesson.mp4").exists()
    # 2. killed after the MP4: percentages only grow, and the MP4 stage is done
    job = run_job(archive, output)
    percents: list[float] = []
    seen = wait_for(output, lambda s: "mp4" in s.get("done", []), job, percents)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert percents == sorted(percents)
    assert seen["state"] == "running", "the job ended before it could be killed"
    mp4_made = (output / "lesson.mp4").stat().st_mtime_ns
    # 3. resumed: the MP4 is not made again, and everything else is there
    job = run_job(archive, output)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert (output / "lesson.mp4").stat().st_mtime_ns == mp4_made
    final = status(output)
    assert final["state"] == "done" and final["done"] == final["stages"]
    assert not [p for p in output.rglob("*") if p.name.endswith((".partial", ".tmp"))]
    for name in ("720p", "360p", "audio"):
        assert ffprobe(output / "hls" / name / "index.m3u8")["streams"]
    assert outputs_current(archive, output)


@pytest.mark.timeout(30)
def test_a_second_job_on_the_same_output_is_refused_while_one_runs(
    archive: Path, tmp_path: Path
) -> None:
    output = tmp_path / "maths"
    first = run_job(archive, output)
    try:
        wait_for(output, lambda s: s.get("stage") == "mp4", first)
        second = run_job(archive, output)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 75, err
    finally:
        first.kill()
        first.wait()


def wait_for(
    output: Path,
    condition: Callable[[dict], bool],
    job: subprocess.Popen[str],
    percents: list[float] | None = None,
    timeout: float = 90,
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = status(output)
        if percents is not None and current.get("pid") == job.pid:
            percents.append(current["percent"])
        if current.get("pid") == job.pid and condition(current):
            return current
        if job.poll() is not None:
            raise AssertionError(f"the job ended first: {job.stderr.read() if job.stderr else ''}")
        time.sleep(0.02)
    raise AssertionError(f"status never matched: {status(output)}")


def tone_levels(paths: list[Path], tone: float, window: float = 0.25) -> list[tuple[float, float]]:
    """(window start, amplitude of `tone`) through the files' audio, one after another."""
    chunks = []
    for path in paths:
        with av.open(os.fspath(path)) as container:
            chunks += [
                frame.to_ndarray().reshape(len(frame.layout.channels), -1)[0]
                for frame in container.decode(audio=0)
            ]
    samples = np.concatenate(chunks)
    size = round(48000 * window)
    levels = []
    for start in range(0, len(samples) - size, size):
        spectrum = np.abs(np.fft.rfft(samples[start : start + size])) * 2 / size
        levels.append((start / 48000, float(spectrum[round(tone * window)])))
    return levels


@pytest.mark.timeout(180)
def test_a_classroom_on_stage_is_heard_in_the_library_copy_when_it_spoke(
    tmp_path: Path,
) -> None:
    # The teacher (440 Hz) for 6 s; a classroom on stage (1000 Hz) from 2.5 s to 4.5 s.
    archive = Archive(tmp_path / "stage", "stage")
    clock = FakeClock()
    write_part(archive, Part(6.0, 1, 640, 360), clock, "start")
    clock.now -= 3.5
    write_stage(archive, "二号教室", 2.0, 1000.0, after=2.5, clock=clock)
    archive.finish()
    output = tmp_path / "library"
    job = run_job(archive.directory, output)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    result = read_result(output)
    assert result is not None and result["stage_seconds"] >= 1.9, result

    # in the MP4, and in the audio-only rung that a slow line replays
    for paths in ([output / "lesson.mp4"], sorted((output / "hls" / "audio").glob("*.ts"))):
        classroom = tone_levels(paths, 1000.0)
        teacher = tone_levels(paths, 440.0)
        heard = [t for t, level in classroom if level > 0.05]
        assert heard, (paths[0], classroom)
        assert 2.0 <= heard[0] <= 2.75 and 4.0 <= heard[-1] <= 4.75, (paths[0], heard)
        assert all(level < 0.01 for t, level in classroom if t < 2.0 or t > 5.0), classroom
        # the teacher goes on under it
        assert all(level > 0.05 for t, level in teacher if 0.5 < t < 5.5), teacher


@pytest.mark.timeout(180)
def test_stage_audio_after_a_reconnect_is_placed_after_the_join(tmp_path: Path) -> None:
    # 4 s, a 2 s gap (the teacher reconnected), 3 s; on stage 1 s into the second
    # part: in the output, 4 s + 1 s (the gap is not in the output).
    archive = Archive(tmp_path / "stage", "stage")
    clock = FakeClock()
    write_part(archive, Part(4.0, 1, 640, 360), clock, "start")
    clock.now += 2.0
    write_part(archive, Part(3.0, 5000, 640, 360), clock, "reconnect")
    archive.manifest.segments[-1].started = archive.manifest.segments[0].started + 6.0
    clock.now -= 2.0
    write_stage(archive, "一号教室", 1.5, 1000.0, after=1.0, clock=clock)
    archive.finish()
    output = tmp_path / "library"
    job = run_job(archive.directory, output)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    heard = [t for t, level in tone_levels([output / "lesson.mp4"], 1000.0) if level > 0.05]
    assert heard and 4.75 <= heard[0] <= 5.25 and 6.0 <= heard[-1] <= 6.75, heard
