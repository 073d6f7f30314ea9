"""Soundtrack: holes become silence, overlaps are cut, frames come out whole."""

import fractions

import av
import numpy as np
import pytest

from recorder.soundtrack import RATE, Soundtrack

pytestmark = pytest.mark.timeout(10)


def tone(samples: int, value: float = 0.5) -> av.AudioFrame:
    data = np.full((2, samples), value, dtype=np.float32)
    frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
    frame.sample_rate = RATE
    frame.time_base = fractions.Fraction(1, RATE)
    return frame


def collect(track: Soundtrack, *chunks: tuple[float, av.AudioFrame]) -> np.ndarray:
    frames = []
    for time, frame in chunks:
        frames += list(track.add(time, frame))
    frames += list(track.flush())
    assert [f.pts for f in frames] == [i * 1024 for i in range(len(frames))]
    assert all(f.samples == 1024 for f in frames[:-1])
    return np.concatenate([f.to_ndarray().reshape(2, -1) for f in frames], axis=1)


def test_a_hole_becomes_silence() -> None:
    track = Soundtrack()
    out = collect(track, (0.0, tone(960)), (0.05, tone(960)))
    assert out.shape[1] == 960 + 1440 + 960
    assert track.silence_added == 1440
    assert np.all(out[:, 960:2400] == 0) and np.all(out[:, 2400:] == 0.5)


def test_an_overlap_is_cut() -> None:
    track = Soundtrack()
    out = collect(track, (0.0, tone(960, 0.25)), (0.005, tone(960, 0.75)))
    assert out.shape[1] == 960 + 240  # the first 15 ms of the second frame overlapped
    assert np.all(out[:, :960] == 0.25) and np.all(out[:, 960:] == 0.75)


def test_small_drift_is_left_alone() -> None:
    track = Soundtrack()
    out = collect(track, (0.0, tone(960)), (0.025, tone(960)))  # 5 ms late
    assert out.shape[1] == 1920 and track.silence_added == 0


def test_the_track_is_padded_to_the_end_of_the_picture() -> None:
    track = Soundtrack()
    frames = list(track.add(0.0, tone(960))) + list(track.fill_to(1.0)) + list(track.flush())
    assert sum(f.samples for f in frames) == RATE
