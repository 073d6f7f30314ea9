"""The ladder with real codecs: decode once, encode lower layers, switch at keyframes."""

import asyncio
import fractions
import itertools
import time

import av
import pytest

from media.ladder import Ladder
from media.selector import LayerSelector
from media.source import Source
from tests.frames import numbered_image, read_number

pytestmark = pytest.mark.timeout(60)


def vp8_frames(
    count: int, width: int = 640, height: int = 360, keyframes: tuple[int, ...] = ()
) -> list[tuple[bytes, int]]:
    """`count` numbered frames encoded once with libvpx: keyframes first and at
    the numbers in `keyframes`."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.bit_rate = 1_000_000
    encoder.time_base = fractions.Fraction(1, 90000)
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    encoder.gop_size = 3000
    out = []
    for n in range(1, count + 1):
        frame = av.VideoFrame.from_ndarray(numbered_image(n, width, height), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = n * 3000
        frame.time_base = encoder.time_base
        if n in keyframes:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in encoder.encode(frame):
            out.append((bytes(packet), n * 3000))
    return out


async def drain(track, count: int, timeout: float = 10.0) -> list[av.Packet]:
    packets: list[av.Packet] = []
    async with asyncio.timeout(timeout):
        while len(packets) < count:
            packets.append(await track.recv())
    return packets


def decode(packets: list[av.Packet]) -> list[tuple[int | None, tuple[int, int]]]:
    decoder = av.CodecContext.create("vp8", "r")
    result = []
    for packet in packets:
        for frame in decoder.decode(av.Packet(bytes(packet))):
            result.append((read_number(frame), (frame.width, frame.height)))
    return result


async def feed(source: Source, frames: list[tuple[bytes, int]], fps: float = 30) -> None:
    for data, ts in frames:
        source.push(data, ts)
        await asyncio.sleep(1 / fps)


async def test_a_lower_layer_carries_the_same_numbered_frames_scaled() -> None:
    top = Source("t", "video", "vp8", 90000)
    top.attach(lambda: None)
    ladder = Ladder(top)
    selector = LayerSelector(ladder.layers)
    selector.select(2)  # 180p, 15 fps
    frames = vp8_frames(60)
    try:
        await feed(top, frames)
        packets = await drain(selector.track, 20)
    finally:
        ladder.close()
    decoded = decode(packets)
    numbers = [n for n, _ in decoded if n is not None]
    assert len(numbers) == len(decoded), "a damaged frame"
    assert {size for _, size in decoded} == {(320, 180)}
    assert numbers == sorted(numbers)
    steps = {b - a for a, b in itertools.pairwise(numbers)}
    assert steps <= {1, 2, 3}, f"the 15 fps layer should take about every other frame: {steps}"
    assert ladder.decoded >= 55


async def test_the_top_is_decoded_but_not_encoded_while_no_lower_layer_is_wanted() -> None:
    top = Source("t", "video", "vp8", 90000)
    asked: list[float] = []
    top.attach(lambda: asked.append(time.monotonic()))
    asked.clear()  # attaching asks for the publisher's first keyframe
    ladder = Ladder(top)
    selector = LayerSelector(ladder.layers)
    selector.select(0)
    try:
        await feed(top, vp8_frames(20))
        await asyncio.sleep(0.2)
    finally:
        ladder.close()
    assert ladder.decoded >= 19, "the decoder is kept warm"
    assert all(layer.frames == 0 for layer in ladder.layers[1:]), "a layer nobody wants"
    assert selector.track.queued == 20
    assert not asked, "the publisher was asked for a keyframe"


async def test_a_switch_down_takes_the_next_frame_without_asking_the_publisher() -> None:
    top = Source("t", "video", "vp8", 90000)
    asked: list[float] = []
    top.attach(lambda: asked.append(time.monotonic()))
    asked.clear()
    ladder = Ladder(top)
    selector = LayerSelector(ladder.layers)
    selector.select(0)
    frames = vp8_frames(60)  # one keyframe, the first
    try:
        await feed(top, frames[:30])
        selector.select(2)
        await feed(top, frames[30:34])
        assert selector.current == 2, "the switch down waited"
    finally:
        ladder.close()
    assert not asked, "the publisher was asked for a keyframe"


async def test_switching_layers_waits_for_a_keyframe_and_keeps_timestamps_rising() -> None:
    top = Source("t", "video", "vp8", 90000)
    top.attach(lambda: None)
    ladder = Ladder(top)
    selector = LayerSelector(ladder.layers)
    selector.select(0)
    frames = vp8_frames(90, keyframes=(35, 80))
    try:
        await feed(top, frames[:30])
        selector.select(1)  # down to 360p: its encoder starts with a keyframe
        await feed(top, frames[30:34])
        assert selector.current == 1
        await feed(top, frames[34:60])
        selector.select(0)  # back to the top: needs a keyframe from the publisher
        await feed(top, frames[60:78])
        assert selector.current == 1, "switched up without a keyframe of the top layer"
        await feed(top, frames[78:])  # the publisher answers with a keyframe at 80
        assert selector.current == 0
        packets = []
        while selector.track.queued:
            packets.append(await selector.track.recv())
    finally:
        ladder.close()
    pts = [p.pts or 0 for p in packets]
    assert pts == sorted(pts) and len(set(pts)) == len(pts), "timestamps went back at a switch"
    numbers = [n for n, _ in decode(packets)]
    assert None not in numbers
    assert selector.switches == 3


async def test_pausing_stops_video_at_once_and_resuming_waits_for_a_keyframe() -> None:
    top = Source("t", "video", "vp8", 90000)
    top.attach(lambda: None)
    ladder = Ladder(top)
    selector = LayerSelector(ladder.layers)
    selector.select(2)
    frames = vp8_frames(60)
    try:
        await feed(top, frames[:20])
        selector.select(None)
        before = selector.track.frames_in
        await feed(top, frames[20:40])
        assert selector.track.frames_in == before
        selector.select(2)
        await feed(top, frames[40:])
        assert selector.track.frames_in > before
    finally:
        ladder.close()
