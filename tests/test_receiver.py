"""A real aiortc receiver on a line that loses packets twice: stock aiortc stalls for
seconds, the resilient receive path does not (research file §3.3)."""

import asyncio
import contextlib
import itertools
import time
from typing import Any

import av
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import adapter
from media.receiver import ResilientReceiver
from tests.frames import NumberedVideoTrack, read_number

pytestmark = pytest.mark.timeout(90)


def drop_twice(receiver, every: int = 150) -> list[int]:
    """Lose every `every`-th video packet, and its first retransmission too. A test
    stand-in for a lossy line, at the receiver's front door."""
    original = receiver._handle_rtp_packet
    seen: dict[int, int] = {}
    dropped: list[int] = []
    codecs: dict[int, Any] = {}

    async def handle(packet, arrival_time_ms):
        if not codecs:
            codecs.update(adapter.receiver_codecs(receiver))
        codec = codecs.get(packet.payload_type)
        rtx = codec is not None and codec.mimeType.lower().endswith("/rtx")
        seq = int.from_bytes(packet.payload[:2], "big") if rtx else packet.sequence_number
        if seq % every == 0 and seq > 0:
            seen[seq] = seen.get(seq, 0) + 1
            if seen[seq] <= 2:
                dropped.append(seq)
                return
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle
    return dropped


async def play(resilient: bool, seconds: float = 12.0) -> tuple[float, int, list[int]]:
    """Returns the longest gap between decoded frames, frames decoded, and numbers."""
    adapter.set_host_addresses(["127.0.0.1"])
    publisher, subscriber = RTCPeerConnection(), RTCPeerConnection()
    publisher.addTransceiver(NumberedVideoTrack(320, 240), "sendonly")
    arrivals: list[float] = []
    numbers: list[int] = []
    tasks = []

    @subscriber.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    assert isinstance(frame, av.VideoFrame)
                    arrivals.append(time.monotonic())
                    number = read_number(frame)
                    if number is not None:
                        numbers.append(number)

        tasks.append(asyncio.ensure_future(read()))

    await publisher.setLocalDescription(await publisher.createOffer())
    await subscriber.setRemoteDescription(publisher.localDescription)
    receiver = subscriber.getTransceivers()[0].receiver
    resilient_receiver = ResilientReceiver(receiver, "video") if resilient else None
    dropped = drop_twice(receiver)
    await subscriber.setLocalDescription(await subscriber.createAnswer())
    await publisher.setRemoteDescription(subscriber.localDescription)
    try:
        await asyncio.sleep(seconds)
        end = time.monotonic()
    finally:
        if resilient_receiver is not None:
            resilient_receiver.close()
        await asyncio.shield(publisher.close())
        await asyncio.shield(subscriber.close())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert dropped, "the lossy line dropped nothing"
    steady = [t for t in arrivals if t > arrivals[0] + 1.0] + [end]
    gaps = [b - a for a, b in itertools.pairwise(steady)]
    return max(gaps, default=seconds), len(arrivals), numbers


async def test_stock_aiortc_stalls_for_seconds_when_a_packet_is_lost_twice() -> None:
    longest, _frames, _numbers = await play(resilient=False)
    assert longest > 2.0, f"expected aiortc's stall; the longest gap was {longest:.2f} s"


async def test_the_resilient_receiver_plays_on_without_a_stall() -> None:
    longest, frames, numbers = await play(resilient=True)
    assert longest < 0.5, f"a {longest:.2f} s freeze"
    assert frames >= 12 * 25
    assert numbers == sorted(numbers)
    assert len(numbers) >= 0.95 * (numbers[-1] - numbers[0] + 1)
