"""The output picture: the newest frame of each video source, drawn on one canvas.

A lesson's segments may differ in size (the teacher changed camera), and a library
file has one. Today there is one source, the camera: its frame is scaled to fit the
canvas, keeping its shape, and the rest is black. A second source joins here: the
timeline tags every frame with its source, `update()` keeps the newest of each, and
`picture()` will draw the courseware large with the teacher picture-in-picture
(a scaled camera frame pasted into a corner, as `_letterbox` pastes one now).
"""

import av
import numpy as np

BLACK_Y, BLACK_UV = 16, 128


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def fit_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest even size of `size`'s shape that fits in `box`, never larger than
    `size` itself (a library rendition never upscales)."""
    width, height = size
    scale = min(box[0] / width, box[1] / height, 1.0)
    return even(width * scale), even(height * scale)


CAMERA = "camera"


class Composer:
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.latest: dict[str, av.VideoFrame] = {}

    def update(self, source: str, frame: av.VideoFrame) -> None:
        self.latest[source] = frame

    def picture(self) -> av.VideoFrame | None:
        """The canvas now (yuv420p, without a timestamp); None before any frame."""
        camera = self.latest.get(CAMERA)
        return None if camera is None else self.compose(camera)

    def compose(self, camera: av.VideoFrame) -> av.VideoFrame:
        """The canvas showing `camera` alone."""
        if (camera.width, camera.height) == (self.width, self.height):
            if camera.format.name == "yuv420p":
                return camera
            return camera.reformat(format="yuv420p")
        # scaled to fit the canvas, up or down: a segment from a smaller camera
        # fills the picture rather than sitting small in its middle
        scale = min(self.width / camera.width, self.height / camera.height)
        width = min(self.width, even(camera.width * scale))
        height = min(self.height, even(camera.height * scale))
        scaled = camera.reformat(width=width, height=height, format="yuv420p")
        if (width, height) == (self.width, self.height):
            return scaled
        return self._letterbox(scaled)

    def _letterbox(self, scaled: av.VideoFrame) -> av.VideoFrame:
        w, h = scaled.width, scaled.height
        cw, ch = self.width, self.height
        # yuv420p as one flat array: the Y plane, then the U and V quarter planes
        source = scaled.to_ndarray().reshape(-1)
        canvas = np.full(cw * ch * 3 // 2, BLACK_UV, dtype=np.uint8)
        canvas[: cw * ch] = BLACK_Y
        x, y = (cw - w) // 4 * 2, (ch - h) // 4 * 2
        planes = (
            (source[: w * h], canvas[: cw * ch], 1),
            (source[w * h : w * h * 5 // 4], canvas[cw * ch : cw * ch * 5 // 4], 2),
            (source[w * h * 5 // 4 :], canvas[cw * ch * 5 // 4 :], 2),
        )
        for plane, target, step in planes:
            pw, ph = w // step, h // step
            target.reshape(ch // step, cw // step)[
                y // step : y // step + ph, x // step : x // step + pw
            ] = plane.reshape(ph, pw)
        return av.VideoFrame.from_ndarray(canvas.reshape(-1, cw), format="yuv420p")
