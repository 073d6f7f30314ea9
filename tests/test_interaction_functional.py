"""Two-way lessons through the real server: hands, the stage, the mix, mutes, chat,
the teacher's grid and role checks, with real aiortc peers."""

import asyncio
import json
import time
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.frames import AUDIO_RATE, band_level, dominant_frequencies, tone_present
from tests.peers import LayoutPeer, SignallingClient

pytestmark = pytest.mark.timeout(150)

TEACHER_LAYOUT = [
    "send:microphone",
    "send:camera",
    "receive:classroom-mix",
    "receive:grid",
    "receive:grid",
]
CLASSROOM_LAYOUT = [
    "send:microphone",
    "send:camera",
    "receive:teacher-audio",
    "receive:teacher-camera",
    "receive:stage-audio",
    "receive:stage-camera",
]


async def latest_state(client: SignallingClient, predicate: Any, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        states = [m for m in client.messages if m.get("type") == "state"]
        if states and predicate(states[-1]):
            return states[-1]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no matching state; last {states[-1:]}")
        await asyncio.sleep(0.05)


async def settled(count: Any, what: str, quiet: float = 1.5, timeout: float = 6.0) -> None:
    """Wait until `count()` stops growing for `quiet` seconds (what was already on
    its way may still arrive), or fail with `what`."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()


async def test_a_classroom_on_stage_reaches_the_others_and_leaves_them_after(
    server: RunningServer,
) -> None:
    teacher = LayoutPeer(server.url, server.token("m", "teacher"), TEACHER_LAYOUT, tone=440)
    room_a = LayoutPeer(
        server.url, server.token("m", "classroom", "甲"), CLASSROOM_LAYOUT, tone=660, first=7000
    )
    room_b = LayoutPeer(
        server.url, server.token("m", "classroom", "乙"), CLASSROOM_LAYOUT, tone=880, first=9000
    )
    peers = [teacher, room_a, room_b]
    try:
        for peer in peers:
            await peer.join()
            await peer.start()
        a_seat = room_a.joined["peer"]
        await room_b.wait_numbers("teacher-camera", lambda n: len(n) > 20)

        # A raises its hand; the teacher sees the queue
        await room_a.signalling.send({"type": "hand", "up": True})
        state = await latest_state(teacher.signalling, lambda s: s.get("hands"))
        assert [h["name"] for h in state["hands"]] == ["甲"]

        # the teacher's grid shows both classrooms, small
        await teacher.wait_numbers(
            "grid1", lambda n: any(x >= 7000 for x in n) or any(x >= 9000 for x in n)
        )
        await teacher.wait_numbers("grid2", lambda n: len(n) > 10)
        grid = {min(teacher.numbers[k]) // 1000 for k in ("grid1", "grid2")}
        assert grid == {7, 9}
        assert all(size[1] <= 240 for k in ("grid1", "grid2") for size in teacher.sizes[k])

        # on stage: B sees and hears A; the teacher hears A in the mix
        await teacher.signalling.send({"type": "stage", "peer": a_seat})
        state = await latest_state(room_b.signalling, lambda s: s.get("stage"))
        assert state["stage"]["name"] == "甲" and state["hands"] if "hands" in state else True
        await room_b.wait_numbers("stage-camera", lambda n: len([x for x in n if x >= 7000]) > 30)
        await asyncio.sleep(2.0)
        stage_numbers = [x for x in room_b.numbers["stage-camera"] if x >= 7000]
        assert stage_numbers == sorted(stage_numbers)
        assert tone_present(room_b.samples("stage-audio", 1.5), AUDIO_RATE, 660)
        mix = teacher.samples("classroom-mix", 1.5)
        assert tone_present(mix, AUDIO_RATE, 660) and tone_present(mix, AUDIO_RATE, 880)
        a_state = await latest_state(room_a.signalling, lambda s: s["you"]["on_stage"])
        assert a_state["you"]["hand"] is False, "bringing a classroom on stage lowers its hand"
        assert "stage-camera" not in room_a.numbers or not any(
            x >= 7000 for x in room_a.numbers.get("stage-camera", [])
        ), "a classroom on stage is not sent its own picture"

        # back to seat: B no longer receives A
        await teacher.signalling.send({"type": "stage", "peer": None})
        await latest_state(room_b.signalling, lambda s: s.get("stage") is None)
        await settled(lambda: len(room_b.numbers["stage-camera"]), "A's picture kept reaching B")
        await settled(lambda: len(room_b.audio_chunks["stage-audio"]), "A's voice kept reaching B")
    finally:
        for peer in peers:
            await peer.close()


async def test_the_teachers_mix_holds_every_classroom_and_mutes_work(server: RunningServer) -> None:
    teacher = LayoutPeer(server.url, server.token("mix", "teacher"), TEACHER_LAYOUT)
    tones = [500.0, 700.0, 900.0]
    rooms = [
        LayoutPeer(
            server.url,
            server.token("mix", "classroom", f"room{i}"),
            ["send:microphone", "receive:teacher-audio"],
            tone=tone,
        )
        for i, tone in enumerate(tones)
    ]
    try:
        await teacher.join()
        await teacher.start()
        for room in rooms:
            await room.join()
            await room.start()
        await asyncio.sleep(4)
        mix = teacher.samples("classroom-mix", 2.0)
        found = dominant_frequencies(mix, AUDIO_RATE, 3)
        for tone in tones:
            assert any(abs(f - tone) < 20 for f in found), (tone, found)
        assert float(abs(mix).max()) < 32767 * 0.99, "the mix clipped"

        # muting one classroom takes it out of the teacher's mix
        await teacher.signalling.send({"type": "mute", "peer": rooms[1].joined["peer"], "on": True})
        muted_state = await latest_state(rooms[1].signalling, lambda s: s["you"]["muted"])
        assert muted_state["you"]["muted"] is True
        await asyncio.sleep(2.0)
        mix = teacher.samples("classroom-mix", 1.0)
        assert band_level(mix, AUDIO_RATE, 700) < band_level(mix, AUDIO_RATE, 500) / 30
        # mute all, then unmute all
        await teacher.signalling.send({"type": "mute_all", "on": True})
        await asyncio.sleep(2.0)
        silent = teacher.samples("classroom-mix", 1.0)
        assert not any(tone_present(silent, AUDIO_RATE, t) for t in tones)
        await teacher.signalling.send({"type": "mute_all", "on": False})
        await asyncio.sleep(2.0)
        assert tone_present(teacher.samples("classroom-mix", 1.0), AUDIO_RATE, 700)
    finally:
        for peer in [teacher, *rooms]:
            await peer.close()


async def test_control_messages_are_refused_to_roles_that_may_not_send_them(
    server: RunningServer,
) -> None:
    teacher = SignallingClient(server.url)
    room = SignallingClient(server.url)
    observer = SignallingClient(server.url)
    for client, role in ((teacher, "teacher"), (room, "classroom"), (observer, "observer")):
        await client.connect()
        await client.send({"type": "join", "token": server.token("ctl", role, role)})
        await client.wait_for("joined")
    seat = [m for m in room.messages if m.get("type") == "state"][-1]["you"]["peer"]
    forbidden = [
        (room, {"type": "stage", "peer": seat}),
        (room, {"type": "mute", "peer": seat, "on": True}),
        (room, {"type": "mute_all", "on": True}),
        (room, {"type": "record", "on": False}),
        (observer, {"type": "stage", "peer": seat}),
        (observer, {"type": "hand", "up": True}),
        (observer, {"type": "chat", "text": "我在这里"}),
        (teacher, {"type": "hand", "up": True}),
    ]
    for client, message in forbidden:
        await client.send(message)
        error = await client.wait_for("error")
        assert error["code"] == "forbidden", (message, error)
    lesson = server.lessons.get("ctl")
    assert lesson is not None
    assert lesson.floor.stage is None and not lesson.floor.muted and not lesson.floor.hands
    # an observer offering to publish is refused too
    await observer.send(
        {
            "type": "offer",
            "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
            "media": ["send:microphone"],
        }
    )
    error = await observer.wait_for("error")
    assert error["code"] == "forbidden"
    for client in (teacher, room, observer):
        await client.close()


async def test_chat_reaches_everyone_and_is_kept_with_the_lesson(server: RunningServer) -> None:
    teacher = SignallingClient(server.url)
    room = SignallingClient(server.url)
    for client, role, name in ((teacher, "teacher", "王老师"), (room, "classroom", "村小")):
        await client.connect()
        await client.send({"type": "join", "token": server.token("talk", role, name)})
        await client.wait_for("joined")
    await room.send({"type": "chat", "text": "老师，我们听不清楚"})
    for client in (teacher, room):
        message = await client.wait_for("chat")
        assert message["from"] == "村小" and message["text"] == "老师，我们听不清楚"
    await room.send({"type": "chat", "text": "x" * 501})
    assert (await room.wait_for("error"))["code"] == "bad_message"
    for client in (teacher, room):
        await client.close()
    lines = (server.settings.data_path / "recordings" / "talk" / "chat.jsonl").read_text()
    kept = [json.loads(line) for line in lines.splitlines()]
    assert [m["text"] for m in kept] == ["老师，我们听不清楚"]
