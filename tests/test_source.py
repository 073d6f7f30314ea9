"""The fan-out core without any network: sources, down tracks, keyframes, timelines."""

import asyncio

import pytest

from media.keyframe import KeyframeRequester
from media.source import Source
from media.timeline import Timeline
from media.track import ForwardTrack

KEY = b"\x10\x02\x00\x9d\x01\x2a\x80\x02\x68\x01" + bytes(20)  # VP8 keyframe, 640x360
DELTA = b"\x11\x02\x00" + bytes(20)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_source(clock: Clock, **kwargs: float) -> tuple[Source, list[float]]:
    sent: list[float] = []
    source = Source("s", "video", "vp8", 90000, clock=clock, **kwargs)  # type: ignore[arg-type]
    source.attach(lambda: sent.append(clock.now))
    return source, sent


async def test_many_keyframe_requests_reach_the_publisher_once_a_second() -> None:
    clock = Clock()
    source, sent = make_source(clock, keyframe_min_interval=1.0)
    sent.clear()
    clock.now += 5
    for _ in range(50):  # fifty classrooms lose a packet at once
        source.request_keyframe()
    assert len(sent) == 1
    clock.now += 0.3
    source.request_keyframe()
    assert len(sent) == 1, "a second request inside the interval went through at once"
    await asyncio.sleep(1.1)  # the deferred request fires when the interval ends
    assert len(sent) == 2
    assert source.keyframe_requests == (52, 3)  # attach asked once too


async def test_a_keyframe_arriving_cancels_the_deferred_request() -> None:
    clock = Clock()
    sent: list[int] = []
    requester = KeyframeRequester(lambda: sent.append(1), 0.2, clock)
    requester.request()
    clock.now += 0.05
    requester.request()
    assert requester.pending
    requester.keyframe_arrived()
    await asyncio.sleep(0.3)
    assert sent == [1]


async def test_a_new_subscriber_starts_from_the_cached_keyframe() -> None:
    clock = Clock()
    source, sent = make_source(clock, keyframe_cache_seconds=1.0)
    sent.clear()
    source.push(KEY, 0)
    source.push(DELTA, 3000)
    source.push(DELTA, 6000)
    clock.now += 0.5
    track = source.subscribe()
    assert track.queued == 3
    assert not track.waiting_for_keyframe
    assert sent == [], "a fresh cached keyframe needs no request to the publisher"
    assert source.size == (640, 360)


async def test_a_subscriber_joining_long_after_the_keyframe_asks_for_one() -> None:
    clock = Clock()
    source, sent = make_source(clock, keyframe_cache_seconds=1.0)
    sent.clear()
    clock.now += 10
    source.push(KEY, 0)
    clock.now += 5
    source.push(DELTA, 3000)
    track = source.subscribe()
    assert track.queued == 0 and track.waiting_for_keyframe
    assert len(sent) == 1
    source.push(DELTA, 6000)
    assert track.queued == 0, "a delta frame reached a subscriber that has no keyframe"
    source.push(KEY, 9000)
    assert track.queued == 1


async def test_a_slow_subscriber_drops_to_the_next_keyframe_without_growing() -> None:
    clock = Clock()
    source, _ = make_source(clock)
    fast = ForwardTrack("video", 4)
    slow = source.subscribe()
    source.push(KEY, 0)
    for i in range(1, 200):
        source.push(DELTA, i * 3000)
        assert slow.queued <= 30
    assert slow.waiting_for_keyframe
    assert slow.overflows >= 1
    source.push(KEY, 200 * 3000)
    assert slow.queued == 1 and not slow.waiting_for_keyframe
    assert fast.queued == 0


async def test_forward_track_yields_packets_in_order_and_ends_on_stop() -> None:
    from aiortc.mediastreams import MediaStreamError

    clock = Clock()
    source, _ = make_source(clock)
    track = source.subscribe()
    source.push(KEY, 0)
    source.push(DELTA, 3000)
    first = await track.recv()
    second = await track.recv()
    assert (first.pts, second.pts) == (0, 3000)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.01)
    source.unsubscribe(track)
    with pytest.raises(MediaStreamError):
        await waiting


def test_audio_overflow_drops_the_oldest_frame() -> None:
    track = ForwardTrack("audio", 3)
    import av

    for i in range(5):
        packet = av.Packet(b"x")
        packet.pts = i
        track.put(packet, True)
    assert track.queued == 3 and track.frames_dropped == 2


def test_timeline_continues_across_a_publisher_reconnect() -> None:
    clock = Clock()
    line = Timeline(90000, clock)
    assert line.map(5000) == 0
    assert line.map(8000) == 3000
    clock.now += 2.0
    line.restart()  # the new publisher's stream starts again from zero
    assert line.map(0) == 3000 + 180000
    assert line.map(3000) == 186000


def test_timeline_unwraps_32_bit_rtp_timestamps() -> None:
    line = Timeline(48000, Clock())
    assert line.map(2**32 - 960) == 0
    assert line.map(0) == 960
    assert line.map(960) == 1920
    assert line.map(0) == 960  # a reordered packet keeps its place


async def test_source_reattach_restarts_subscribers_at_the_next_keyframe() -> None:
    clock = Clock()
    source, _ = make_source(clock)
    track = source.subscribe()
    source.push(KEY, 0)
    source.push(DELTA, 3000)
    source.detach()
    assert not source.live
    source.attach(lambda: None)
    assert track.queued == 0 and track.waiting_for_keyframe
    source.push(DELTA, 0)
    assert track.queued == 0
    source.push(KEY, 3000)
    assert track.queued == 1


def test_a_word_that_ended_between_two_polls_is_still_heard() -> None:
    source = Source("teacher", "audio", "opus", 48000)
    for _ in range(15):  # 300 ms of speech at -30 dBov, then a second of silence
        source.hear_level(-30.0)
    for _ in range(50):
        source.hear_level(-127.0)
    assert source.audio_level < -120.0
    assert source.peak_audio_level() > -35.0
    assert source.peak_audio_level() < -120.0  # that word was heard once, not again
