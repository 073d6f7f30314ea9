"""The teacher's PC dies mid-lesson (no goodbye, no RTCP BYE, its socket cut) and
comes back with the same link: the classrooms see the teacher reconnecting, then
receive the teacher again by themselves, and the lesson leaves one archive whose
two segments are the two connections."""

import asyncio
import json
import socket
import time
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.media_probe import decode_all
from tests.peers import Classroom, Teacher

pytestmark = pytest.mark.timeout(90)

LESSON = "physics"


async def cut_off(teacher: Teacher) -> None:
    """As if the teacher's PC lost power: its media stops without RTCP BYE and its
    socket's TCP connection ends without a WebSocket closing handshake."""

    async def nothing(data: bytes) -> None:
        return None

    for transceiver in teacher.pc.getTransceivers():
        transceiver.sender.transport._send_rtp = nothing  # type: ignore[method-assign]
    ws = teacher.signalling.ws
    assert ws is not None
    sock = ws.get_extra_info("socket")  # asyncio's TransportSocket
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)


async def state_where(room: Classroom, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        states = [m for m in room.signalling.messages if m.get("type") == "state"]
        if states and predicate(states[-1]):
            return states[-1]
        assert time.monotonic() < deadline, f"no such state; last {states[-1:]}"
        await asyncio.sleep(0.05)


async def wait_numbers(room: Classroom, predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate(room.numbers):
        assert time.monotonic() < deadline, f"last numbers {room.numbers[-5:]}"
        await asyncio.sleep(0.05)


async def test_a_teacher_cut_off_mid_lesson_comes_back_and_the_lesson_goes_on(
    server: RunningServer,
) -> None:
    token = server.token(LESSON, "teacher", "王老师")
    rooms = [Classroom(server.url, server.token(LESSON, "classroom", f"村小{i}")) for i in (1, 2)]
    teacher = Teacher(server.url, token)
    again = Teacher(server.url, token, first=5000)
    try:
        await teacher.join()
        await teacher.publish()
        for room in rooms:
            await room.join()
            await room.subscribe()
        for room in rooms:
            await room.wait_frames(60)

        await cut_off(teacher)
        for room in rooms:
            state = await state_where(room, lambda s: s["teacher"]["reconnecting"])
            assert state["teacher"]["live"] is False and state["teacher"]["name"] == "王老师"
        lesson = server.lessons.get(LESSON)
        assert lesson is not None and lesson.recording is not None, "the recording stopped"
        await asyncio.shield(teacher.pc.close())  # the dead PC's leftovers, in this process

        await again.join()
        assert again.joined["peer"] == "teacher"
        await again.publish()
        for room in rooms:
            await state_where(
                room, lambda s: s["teacher"]["live"] and not s["teacher"]["reconnecting"]
            )
            await wait_numbers(room, lambda numbers: sum(n >= 5000 for n in numbers) >= 60)
    finally:
        for peer in (again, *rooms):
            await peer.close()
        await teacher.signalling.close()

    for room in rooms:
        assert room.numbers == sorted(room.numbers), "a classroom went back in time"
        assert room.damaged == 0
    deadline = time.monotonic() + 15
    while server.lessons.get(LESSON) is not None:
        assert time.monotonic() < deadline, "the lesson did not close"
        await asyncio.sleep(0.1)
    directory = server.settings.data_path / "recordings" / LESSON
    manifest = json.loads((directory / "archive.json").read_text())
    assert manifest["state"] == "finished"
    assert [s["reason"] for s in manifest["segments"]] == ["start", "reconnect"]
    first, second = (decode_all(directory / s["file"]) for s in manifest["segments"])
    assert first.numbers and max(first.numbers) < 5000
    assert second.numbers and min(second.numbers) >= 5000
    assert first.damaged == second.damaged == 0
    files = sorted(path.name for path in directory.glob("segment-*"))
    assert files == [s["file"] for s in manifest["segments"]], "one archive, two segments"
