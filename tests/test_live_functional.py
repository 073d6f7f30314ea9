"""A teacher publishes through the real server; classrooms receive what was sent."""

import asyncio

import pytest

from tests.conftest import RunningServer
from tests.frames import tone_present
from tests.peers import Classroom, Teacher

pytestmark = pytest.mark.timeout(90)


async def test_three_classrooms_receive_the_frames_and_tone_the_teacher_sends(
    server: RunningServer,
) -> None:
    teacher = Teacher(server.url, server.token("maths", "teacher"), tone=440.0)
    classrooms = [
        Classroom(server.url, server.token("maths", "classroom", f"接收教室 {i}"))
        for i in range(1, 4)
    ]
    try:
        await teacher.join()
        for classroom in classrooms:
            await classroom.join()
            await classroom.subscribe()
        await teacher.publish()
        await teacher.wait_connected()
        for classroom in classrooms:
            await classroom.wait_frames(90, timeout=30)
        await asyncio.sleep(1.0)
    finally:
        for peer in [teacher, *classrooms]:
            await peer.close()

    for classroom in classrooms:
        numbers = classroom.numbers
        assert numbers == sorted(numbers), "frame numbers arrived out of order"
        assert len(set(numbers)) == len(numbers), "a frame arrived twice"
        span = numbers[-1] - numbers[0] + 1
        assert len(numbers) >= 0.95 * span, f"too many gaps: {len(numbers)} of {span}"
        assert classroom.sizes == {(640, 360)}
        audio = classroom.audio()
        assert len(audio) > classroom.audio_rate, "less than a second of audio arrived"
        assert tone_present(audio[-classroom.audio_rate * 2 :], classroom.audio_rate, 440.0)
