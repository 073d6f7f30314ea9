"""Per-classroom layers through the real server, chosen by the classroom or its line."""

import asyncio
import time

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.peers import Classroom, Teacher

pytestmark = pytest.mark.timeout(120)


async def wait_for_size(classroom: Classroom, size: tuple[int, int], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while classroom.last_size != size:
        if time.monotonic() > deadline:
            raise TimeoutError(f"frames stayed {classroom.last_size}, wanted {size}")
        await asyncio.sleep(0.1)


async def test_a_classroom_capped_low_gets_the_180p_layer_and_can_go_back_up(
    server: RunningServer,
) -> None:
    teacher = Teacher(server.url, server.token("maths", "teacher"))
    low = Classroom(server.url, server.token("maths", "classroom", "村小"))
    high = Classroom(server.url, server.token("maths", "classroom", "镇中心校"))
    try:
        await teacher.join()
        await teacher.publish()
        for classroom in (low, high):
            await classroom.join()
            await classroom.subscribe()
        await low.signalling.send({"type": "quality", "cap": "low"})
        await high.wait_frames(30)
        await wait_for_size(low, (320, 180))
        start = len(low.numbers)
        await asyncio.sleep(2)
        assert len(low.numbers) - start >= 20, "the low layer stalled"
        async with aiohttp.ClientSession() as http:
            url = f"{server.url}/api/lessons/maths/stats"
            headers = {"Authorization": "Bearer " + server.token("maths", "teacher")}
            async with http.get(url, headers=headers) as response:
                stats = await response.json()
            async with http.get(url, headers={"Authorization": "Bearer " + low.token}) as response:
                assert response.status == 403
        rooms = {room["name"]: room for room in stats["classrooms"]}
        assert rooms["村小"]["layer"] == "180p" and rooms["村小"]["cap"] == "low"
        assert rooms["村小"]["quality"] == "poor"
        assert rooms["镇中心校"]["layer"] == "top" and rooms["镇中心校"]["quality"] == "good"
        states = [m for m in low.signalling.messages if m.get("type") == "state"]
        assert states[-1]["video"]["cap"] == "low"
        assert states[-1]["video"]["layer"] == "180p"

        await low.signalling.send({"type": "quality", "cap": "auto"})
        await wait_for_size(low, (640, 360), timeout=30)
    finally:
        for peer in (teacher, low, high):
            await peer.close()
    for classroom in (low, high):
        numbers = classroom.numbers
        assert numbers == sorted(numbers), "frame numbers went backwards across a layer switch"
    assert high.sizes == {(640, 360)}, "the other classroom was disturbed"


async def test_audio_only_stops_video_but_never_audio(server: RunningServer) -> None:
    teacher = Teacher(server.url, server.token("maths", "teacher"))
    room = Classroom(server.url, server.token("maths", "classroom"))
    try:
        await teacher.join()
        await teacher.publish()
        await room.join()
        await room.subscribe()
        await room.wait_frames(15)
        await room.signalling.send({"type": "quality", "cap": "audio"})
        for _ in range(30):
            state = await room.signalling.wait_for("state", timeout=10)
            if state["video"]["paused"]:
                break
        assert state["video"]["reason"] == "audio_only_chosen"
        await asyncio.sleep(0.5)
        frames, chunks = len(room.numbers), len(room.audio_chunks)
        await asyncio.sleep(2)
        assert len(room.numbers) == frames, "video kept coming in audio-only mode"
        assert len(room.audio_chunks) - chunks >= 80, "audio stopped"
        await room.signalling.send({"type": "quality", "cap": "bogus"})
        error = await room.signalling.wait_for("error")
        assert error["code"] == "bad_message" and "auto" in error["message"]
    finally:
        await teacher.close()
        await room.close()
