"""The output picture and the rendition ladder: shapes kept, never upscaled."""

import av
import numpy as np
import pytest

from recorder.compose import Composer, fit_size
from recorder.renditions import ladder
from tests.frames import numbered_image, read_number

pytestmark = pytest.mark.timeout(10)


def picture(width: int, height: int, number: int = 7) -> av.VideoFrame:
    image = numbered_image(number, width, height)
    return av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")


def test_a_frame_of_the_canvas_size_passes_through() -> None:
    frame = picture(1280, 720)
    assert Composer(1280, 720).compose(frame) is frame


def test_a_frame_of_another_shape_is_letterboxed() -> None:
    out = Composer(1280, 720).compose(picture(640, 480))
    assert (out.width, out.height) == (1280, 720)
    gray = out.to_ndarray(format="gray")
    assert gray[:, :150].max() <= 2 and gray[:, -150:].max() <= 2  # black bars
    middle = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(out.to_ndarray(format="rgb24")[:, 160:1120], dtype=np.uint8),
        format="rgb24",
    )
    assert read_number(middle) == 7  # the picture itself, whole


def test_a_smaller_frame_fills_the_canvas() -> None:
    out = Composer(1280, 720).compose(picture(320, 180))
    assert (out.width, out.height) == (1280, 720)
    assert read_number(out) == 7


def test_sizes_keep_their_shape_and_never_grow() -> None:
    assert fit_size((1920, 1080), (1280, 720)) == (1280, 720)
    assert fit_size((640, 360), (1280, 720)) == (640, 360)
    assert fit_size((640, 480), (640, 360)) == (480, 360)
    assert fit_size((1279, 719), (640, 360)) == (640, 360)


def test_the_ladder_has_a_top_rung_up_to_720p_and_360p_below_it() -> None:
    assert [(r.name, r.width, r.height) for r in ladder((1920, 1080))] == [
        ("720p", 1280, 720),
        ("360p", 640, 360),
    ]
    assert [(r.name, r.width, r.height) for r in ladder((640, 480))] == [
        ("480p", 640, 480),
        ("360p", 480, 360),
    ]
    assert [r.name for r in ladder((640, 360))] == ["360p"]
