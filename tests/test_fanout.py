"""A source's fan-out in slices of the event loop: every sink gets every frame, in
order, other callbacks run between the slices, and a sink that left gets nothing
more."""

import asyncio
import time

import av
import pytest

from media.fanout import BACKLOG, FanOut


def frame(number: int) -> av.Packet:
    packet = av.Packet(bytes([number % 256]) * 10)
    packet.pts = number
    return packet


async def drained(fan_out: FanOut) -> None:
    for _ in range(10_000):
        if not fan_out.waiting:
            return
        await asyncio.sleep(0)
    raise AssertionError("the fan-out never finished")


class SlowSink:
    """Takes `cost` seconds a frame, as a subscriber's protect-and-send does in bulk."""

    def __init__(self, log: list[tuple[str, int]], name: str, cost: float) -> None:
        self.log, self.name, self.cost = log, name, cost

    def __call__(self, packet: av.Packet, keyframe: bool) -> None:
        end = time.perf_counter() + self.cost
        while time.perf_counter() < end:
            pass
        self.log.append((self.name, int(packet.pts or 0)))


async def test_a_long_fan_out_lets_the_loop_run_and_keeps_every_sink_in_order() -> None:
    log: list[tuple[str, int]] = []
    sinks: dict[object, SlowSink] = {}
    fan_out = FanOut(sinks, slice_seconds=0.002)  # type: ignore[arg-type]
    for index in range(10):
        sinks[index] = SlowSink(log, f"s{index}", 0.001)
    loop = asyncio.get_running_loop()
    loop.call_soon(lambda: log.append(("loop", 0)))  # due before the next slice
    for number in (1, 2, 3):
        fan_out.send(frame(number), number == 1)
    assert fan_out.waiting > 0, "10 ms of fan-out was not cut at 2 ms"
    await drained(fan_out)
    assert ("loop", 0) in log
    first_frame_done = max(i for i, entry in enumerate(log) if entry[1] == 1)
    assert log.index(("loop", 0)) < first_frame_done, "the loop waited for the whole frame"
    for index in range(10):
        got = [number for name, number in log if name == f"s{index}"]
        assert got == [1, 2, 3]
    assert fan_out.sliced >= 1


async def test_a_sink_that_leaves_mid_frame_gets_nothing_more() -> None:
    log: list[tuple[str, int]] = []
    sinks: dict[object, SlowSink] = {i: SlowSink(log, f"s{i}", 0.001) for i in range(8)}
    fan_out = FanOut(sinks, slice_seconds=0.0015)  # type: ignore[arg-type]
    fan_out.send(frame(1), True)
    assert fan_out.waiting
    del sinks[7]  # leaves before its turn
    sinks[8] = SlowSink(log, "s8", 0.0)  # joins: from the next frame on
    fan_out.send(frame(2), False)
    await drained(fan_out)
    assert [n for name, n in log if name == "s7"] == []
    assert [n for name, n in log if name == "s8"] == [2]
    assert [n for name, n in log if name == "s0"] == [1, 2]


async def test_a_failing_sink_does_not_stop_the_others() -> None:
    log: list[tuple[str, int]] = []
    errors: list[object] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))

    def broken(packet: av.Packet, keyframe: bool) -> None:
        raise RuntimeError("a broken sink")

    sinks: dict[object, object] = {0: SlowSink(log, "s0", 0.003), 1: broken}
    sinks[2] = SlowSink(log, "s2", 0.0)
    fan_out = FanOut(sinks, slice_seconds=0.001)  # type: ignore[arg-type]
    fan_out.send(frame(1), True)  # cut after s0: the broken sink fails in a later turn
    fan_out.send(frame(2), False)
    await drained(fan_out)
    assert [n for name, n in log if name == "s2"] == [1, 2]
    assert errors, "the failure reached the loop's exception handler"


def test_without_a_running_loop_everything_goes_at_once() -> None:
    log: list[tuple[str, int]] = []
    sinks = {i: SlowSink(log, f"s{i}", 0.001) for i in range(5)}
    fan_out = FanOut(sinks, slice_seconds=0.0001)  # type: ignore[arg-type]
    fan_out.send(frame(1), True)
    assert fan_out.waiting == 0
    assert len(log) == 5


async def test_a_server_that_cannot_keep_up_stops_cutting() -> None:
    log: list[tuple[str, int]] = []
    sinks = {i: SlowSink(log, f"s{i}", 0.0002) for i in range(4)}
    fan_out = FanOut(sinks, slice_seconds=0.0)  # type: ignore[arg-type]
    for number in range(BACKLOG + 5):
        fan_out.send(frame(number), number == 0)
    assert fan_out.waiting <= BACKLOG
    await drained(fan_out)
    assert [n for name, n in log if name == "s3"] == list(range(BACKLOG + 5))


@pytest.mark.parametrize("count", [1, 3])
async def test_a_quick_fan_out_is_not_cut(count: int) -> None:
    log: list[tuple[str, int]] = []
    sinks = {i: SlowSink(log, f"s{i}", 0.0) for i in range(count)}
    fan_out = FanOut(sinks)  # type: ignore[arg-type]
    fan_out.send(frame(1), True)
    assert fan_out.waiting == 0 and len(log) == count and fan_out.sliced == 0
