"""`zhuandi library reprocess`'s progress bar: redrawn in place on a terminal, one
line per stage and tenth elsewhere."""

import io

import pytest

from server.progress_bar import WIDTH, ProgressBar

pytestmark = pytest.mark.timeout(10)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_bar_redrawn_in_place() -> None:
    out = Terminal()
    bar = ProgressBar("alg1", out)
    bar.show(0.0, "mp4")
    bar.show(50.0, "hls-360p")
    bar.end("done in 3.0 s")
    text = out.getvalue()
    assert text.count("\r") == 2 and "\n" in text
    half = "#" * (WIDTH // 2) + "-" * (WIDTH - WIDTH // 2)
    assert f"alg1 [{half}]  50.0% hls-360p" in text
    assert text.endswith("alg1 done in 3.0 s\n")


def test_a_log_gets_a_line_per_stage_and_tenth() -> None:
    out = io.StringIO()
    bar = ProgressBar("alg1", out)
    for percent in (0.0, 1.0, 2.0, 12.0, 13.0):
        bar.show(percent, "mp4")
    bar.show(13.0, "hls-720p")
    assert out.getvalue().splitlines() == [
        "alg1   0.0% mp4",
        "alg1  12.0% mp4",
        "alg1  13.0% hls-720p",
    ]
