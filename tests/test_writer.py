"""PacketWriter: real VP8, H.264 and Opus packets in, files that ffprobe and PyAV read
back frame by frame, including files cut short as a crash would leave them."""

import itertools
import shutil
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from media.bitstream import H264, VP8
from recorder.timing import StreamClock
from recorder.writer import PacketWriter
from tests.encoded import (
    AUDIO_FRAME,
    FPS,
    FRAMES,
    SECONDS,
    h264_frames,
    opus_packets,
    vp8_frames,
)
from tests.frames import AUDIO_RATE, read_number, tone_present
from tests.media_probe import ffprobe, stream

pytestmark = pytest.mark.timeout(60)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def feed(
    writer: PacketWriter,
    clock: FakeClock,
    video: list[tuple[bytes, bool]] | None,
    audio: list[bytes] | None,
    *,
    video_ts: int = 0,
    audio_ts: int = 0,
    first_frame: int = 0,
) -> None:
    """Hand packets over in arrival order, as they would come live: video at 30 fps,
    audio every 20 ms, timestamps counted from the given origins (32-bit, wrapping)."""
    events: list[tuple[float, int, int]] = []
    if video is not None:
        events += [(i / FPS, 0, i) for i in range(first_frame, len(video))]
    if audio is not None:
        events += [(i / 50, 1, i) for i in range(len(audio))]
    start = clock.now
    for at, kind, index in sorted(events):
        clock.now = start + at
        if kind == 0:
            assert video is not None
            data, keyframe = video[index]
            writer.write_video(data, (video_ts + index * 3000) % (1 << 32), keyframe)
        else:
            assert audio is not None
            writer.write_audio(audio[index], (audio_ts + index * AUDIO_FRAME) % (1 << 32))


# -- reading files back ------------------------------------------------------


def decoded_numbers(path: Path) -> list[int | None]:
    """The number of every video frame that decodes, in file order; stops quietly at
    a cut."""
    numbers: list[int | None] = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                numbers.append(read_number(frame))
        except av.FFmpegError:
            pass  # the torn last cluster of a cut file
    return numbers


def decoded_audio(path: Path) -> np.ndarray:
    chunks = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(audio=0):
                chunks.append(frame.to_ndarray()[0].astype(np.float64))
        except av.FFmpegError:
            pass
    return np.concatenate(chunks) if chunks else np.zeros(0)


def video_pts(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [
            float(p.pts * p.time_base)
            for p in container.demux(video=0)
            if p.pts is not None and p.time_base is not None
        ]


def cut(path: Path, fraction: float, dest: Path) -> Path:
    data = path.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def assert_consecutive(numbers: list[int | None], first: int = 1) -> None:
    assert None not in numbers, "a frame decoded with a broken number"
    assert numbers == list(range(first, first + len(numbers)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- tests ---------------------------------------------------------------------


def test_vp8_and_opus_are_written_as_sent(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, clock=clock)
    feed(writer, clock, vp8_frames(), opus_packets(), video_ts=123_456, audio_ts=987_654)
    writer.close()

    info = ffprobe(path)
    video, audio = stream(info, "video"), stream(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("vp8", 640, 360)
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("opus", "48000", 2)
    assert float(info["format"]["duration"]) == pytest.approx(SECONDS, abs=0.2)
    assert_consecutive(decoded_numbers(path))
    assert len(decoded_numbers(path)) == FRAMES
    sound = decoded_audio(path)
    assert len(sound) == pytest.approx(SECONDS * AUDIO_RATE, rel=0.02)
    assert tone_present(sound, AUDIO_RATE, 440.0)
    stats = writer.stats
    assert (stats.video_frames, stats.audio_frames, stats.dropped) == (FRAMES, SECONDS * 50, 0)
    assert stats.video_size == (640, 360)


def test_webm_holds_the_same(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lesson.webm"
    writer = PacketWriter(path, clock=clock)
    feed(writer, clock, vp8_frames()[:90], opus_packets()[:150])
    writer.close()
    assert ffprobe(path)["format"]["format_name"] == "matroska,webm"
    assert_consecutive(decoded_numbers(path))


def test_a_file_cut_at_60_percent_plays_up_to_the_cut(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, clock=clock)
    feed(writer, clock, vp8_frames(), opus_packets())
    writer.close()

    numbers = decoded_numbers(cut(path, 0.6, tmp_path / "cut.mkv"))
    assert_consecutive(numbers)
    # Clusters hold at most a second: at most that is lost before the cut.
    assert len(numbers) >= 0.6 * FRAMES - 1.2 * FPS, len(numbers)
    assert len(decoded_audio(tmp_path / "cut.mkv")) >= 4 * AUDIO_RATE


def test_a_file_that_was_never_closed_plays(tmp_path: Path, clock: FakeClock) -> None:
    """What `kill -9` leaves: no trailer, no index, the last cluster unwritten."""
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, clock=clock)
    try:
        feed(writer, clock, vp8_frames()[:180], opus_packets()[:300])
        deadline = time.monotonic() + 10
        while writer.queued or writer.stats.video_frames < 180:
            assert time.monotonic() < deadline, "the writer thread did not catch up"
            time.sleep(0.02)
        snapshot = tmp_path / "snapshot.mkv"
        shutil.copy(path, snapshot)
    finally:
        writer.close()
    numbers = decoded_numbers(snapshot)
    assert_consecutive(numbers)
    assert len(numbers) >= 180 - 1.2 * FPS, len(numbers)


def test_the_file_starts_at_a_keyframe_and_asks_for_one(tmp_path: Path, clock: FakeClock) -> None:
    frames = vp8_frames()
    keyframes = [i for i, (_, key) in enumerate(frames) if key]
    assert keyframes[0] == 0 and len(keyframes) >= 2
    asked: list[float] = []
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, clock=clock, on_keyframe_needed=lambda: asked.append(clock.now))
    # join mid-GOP: the first frames cannot be decoded without the keyframe before them
    feed(writer, clock, frames, None, first_frame=10)
    writer.close()
    numbers = decoded_numbers(path)
    assert_consecutive(numbers, first=keyframes[1] + 1)
    assert asked, "no keyframe was requested"
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(asked)), "requests not paced"
    assert writer.stats.skipped == keyframes[1] - 10


def test_timestamps_wrap_and_a_new_connection_continues_the_file(
    tmp_path: Path, clock: FakeClock
) -> None:
    frames, audio = vp8_frames()[:150], opus_packets()[:250]
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, clock=clock)
    # 32-bit RTP timestamps that wrap during the first connection
    feed(writer, clock, frames, audio, video_ts=(1 << 32) - 90_000, audio_ts=(1 << 32) - 48_000)
    clock.now += 3.0  # reconnecting
    writer.restart()
    feed(writer, clock, frames, audio, video_ts=5_000, audio_ts=77)
    writer.close()

    numbers = decoded_numbers(path)
    assert numbers == list(range(1, 151)) * 2
    times = video_pts(path)
    assert times == sorted(times)
    gap = times[150] - times[149]
    assert gap == pytest.approx(3.0 + 1 / FPS, abs=0.05)
    assert float(ffprobe(path)["format"]["duration"]) == pytest.approx(13.0, abs=0.3)


def test_a_burst_of_old_frames_at_the_start_is_caught_up(tmp_path: Path, clock: FakeClock) -> None:
    """A subscriber that joins gets the last keyframe and what followed it at once:
    placed by arrival, video would then lag the audio by that much for good."""
    frames, audio = vp8_frames(), opus_packets()
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, clock=clock)
    start = clock.now
    events = [(max(i - 30, 0) / FPS, 0, i) for i in range(len(frames))]  # 1 s at once
    events += [(i / 50, 1, i) for i in range(len(audio))]
    for at, kind, index in sorted(events):
        clock.now = start + at
        if kind == 0:
            writer.write_video(frames[index][0], index * 3000, frames[index][1])
        else:
            writer.write_audio(audio[index], index * AUDIO_FRAME)
    writer.close()
    times = video_pts(path)
    assert len(times) == FRAMES and times == sorted(times)
    # frame i arrived at (i - 30) / 30 s; by the end the file has caught up with that
    assert times[-1] == pytest.approx((FRAMES - 1 - 30) / FPS, abs=0.05)
    assert_consecutive(decoded_numbers(path))


def test_stream_clock_unwraps_drops_duplicates_and_resyncs() -> None:
    clock = StreamClock(1000, resync_seconds=5)
    origin = 100.0
    top = (1 << 32) - 500
    assert clock.map(top, origin + 1.0, origin) == 1000
    assert clock.map(top + 100, origin + 1.1, origin) == 1100
    assert clock.map(top + 100, origin + 1.1, origin) is None  # duplicate
    assert clock.map(top + 50, origin + 1.1, origin) is None  # older than the last
    assert clock.map(200, origin + 1.7, origin) == 1700  # wrapped
    # the sender restarted: new timestamps, far off; placed by arrival again
    assert clock.map(3_000_000, origin + 2.0, origin) == 2000
    assert clock.resyncs == 1
    clock.reset()
    assert clock.map(123_456, origin + 1.0, origin) == 2001  # never backwards
    assert clock.map(123_556, origin + 3.0, origin) == 2101  # late arrivals keep spacing


def test_stream_clock_catches_up_at_most_a_tenth_faster() -> None:
    clock = StreamClock(1000)
    outs = [clock.map(t, 0.0, 0.0) for t in range(0, 1000, 20)]  # 1 s arriving at once
    steps = [b - a for a, b in itertools.pairwise(outs)]  # type: ignore[operator]
    assert set(steps) == {18}
    assert outs[-1] is not None and outs[-1] == 49 * 18


def test_stream_clock_never_runs_far_ahead_of_the_wall_clock() -> None:
    clock = StreamClock(1000, max_ahead=1.5)
    assert clock.map(0, 10.0, 0.0) == 10_000
    assert clock.map(3000, 10.1, 0.0) == 10_100  # 3 s of media in 0.1 s: a jump
    assert clock.resyncs == 1
    assert clock.map(3020, 10.12, 0.0) == 10_120


def test_a_full_queue_drops_to_the_next_keyframe_and_never_blocks(tmp_path: Path) -> None:
    frames = vp8_frames()
    keyframes = {i for i, (_, key) in enumerate(frames) if key}
    path = tmp_path / "lesson.mkv"
    asked: list[int] = []
    writer = PacketWriter(
        path, audio=False, max_queue=8, on_keyframe_needed=lambda: asked.append(1)
    )
    release = threading.Event()
    stalled = _stall(writer, release)  # a disk that hangs
    slowest = 0.0
    for index, (data, keyframe) in enumerate(frames):
        started = time.perf_counter()
        writer.write_video(data, index * 3000, keyframe)
        slowest = max(slowest, time.perf_counter() - started)
        if index == 20:
            assert stalled.wait(5)
        if index == 100:
            release.set()  # the disk is back
        if index >= 100:
            time.sleep(0.001)
    writer.close()

    assert slowest < 0.1, f"write_video blocked for {slowest * 1000:.1f} ms"
    stats = writer.stats
    assert stats.dropped > 0 and asked
    decoded = decoded_numbers(path)
    numbers = [n for n in decoded if n is not None]
    assert len(numbers) == len(decoded), "a frame decoded against a missing reference"
    assert numbers == sorted(numbers)
    runs = _runs(numbers)
    assert len(runs) >= 2, runs
    for first, _ in runs[1:]:
        assert first - 1 in keyframes, f"after a gap the file goes on at {first}, not a keyframe"


def _stall(writer: PacketWriter, release: threading.Event) -> threading.Event:
    """Make the writer thread hang on its next packet until `release` is set."""
    muxer = writer._muxer
    original = muxer.write_video
    stalled = threading.Event()

    def write_video(data: bytes, pts: int, keyframe: bool) -> None:
        if not release.is_set():
            stalled.set()
            release.wait()
        original(data, pts, keyframe)

    muxer.write_video = write_video  # type: ignore[method-assign]
    return stalled


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def test_h264_goes_to_fragmented_mp4_that_survives_a_cut(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lesson.mp4"
    writer = PacketWriter(path, video=H264, clock=clock)
    feed(writer, clock, h264_frames(), opus_packets())
    writer.close()

    info = ffprobe(path)
    video, audio = stream(info, "video"), stream(info, "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert audio["codec_name"] == "opus"
    assert float(info["format"]["duration"]) == pytest.approx(SECONDS, abs=0.2)
    assert_consecutive(decoded_numbers(path))
    assert len(decoded_numbers(path)) == FRAMES
    numbers = decoded_numbers(cut(path, 0.6, tmp_path / "cut.mp4"))
    assert_consecutive(numbers)
    assert len(numbers) >= 0.6 * FRAMES - 1.2 * FPS, len(numbers)


def test_h264_in_matroska(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, video=H264, clock=clock)
    feed(writer, clock, h264_frames()[:90], opus_packets()[:150])
    writer.close()
    assert stream(ffprobe(path), "video")["codec_name"] == "h264"
    assert_consecutive(decoded_numbers(path))


def test_audio_before_any_video_starts_the_file_after_a_wait(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A teacher with the camera off still gets recorded; the camera can come later."""
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, clock=clock, video_wait=3.0)
    feed(writer, clock, None, opus_packets()[:250])
    feed(writer, clock, vp8_frames()[:60], opus_packets()[:100], audio_ts=250 * AUDIO_FRAME)
    writer.close()
    assert_consecutive(decoded_numbers(path))
    assert len(decoded_numbers(path)) == 60
    # the first 2 s of preroll were kept, from 5 s of audio before the file started
    assert len(decoded_audio(path)) >= 4 * AUDIO_RATE


def test_audio_only(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "voice.mkv"
    writer = PacketWriter(path, video=None, clock=clock)
    feed(writer, clock, None, opus_packets()[:100])
    writer.close()
    assert [s["codec_type"] for s in ffprobe(path)["streams"]] == ["audio"]
    assert len(decoded_audio(path)) == pytest.approx(2 * AUDIO_RATE, rel=0.03)


def test_a_new_resolution_at_a_keyframe(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "lesson.mkv"
    writer = PacketWriter(path, audio=False, clock=clock)
    feed(writer, clock, vp8_frames()[:60], None)
    small = vp8_frames(60, 320, 180)
    clock.now += 1 / FPS
    feed(writer, clock, small, None, video_ts=60 * 3000)
    writer.close()
    sizes = []
    with av.open(str(path)) as container:
        sizes = [(f.width, f.height) for f in container.decode(video=0)]
    assert sizes == [(640, 360)] * 60 + [(320, 180)] * 60
    assert writer.stats.video_size == (320, 180)


def test_close_is_safe_twice_and_an_empty_recording_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.mkv"
    writer = PacketWriter(path)
    assert path.exists()  # an unwritable path would have failed here
    writer.close()
    writer.close()
    writer.write_video(vp8_frames()[0][0], 0, True)  # ignored after close
    assert not path.exists()


@pytest.mark.parametrize(
    ("name", "codec", "message"),
    [
        ("a.mp4", VP8, "VP8 video cannot go in .mp4"),
        ("a.webm", H264, "H264 video cannot go in .webm"),
        ("a.avi", VP8, "cannot record to '.avi'"),
    ],
)
def test_a_container_that_cannot_hold_the_codec_is_refused(
    tmp_path: Path, name: str, codec: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PacketWriter(tmp_path / name, video=codec)
    assert not (tmp_path / name).exists()


def test_an_unwritable_path_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        PacketWriter(tmp_path / "missing" / "lesson.mkv")
