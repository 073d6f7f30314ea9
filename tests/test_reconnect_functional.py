"""Lessons go on through dropped lines, dead links and server restarts."""

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, make_settings, start_server
from tests.peers import Classroom, LayoutPeer, SignallingClient, Teacher

pytestmark = pytest.mark.timeout(120)


async def latest_state(client: SignallingClient, predicate: Any, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        states = [m for m in client.messages if m.get("type") == "state"]
        if states and predicate(states[-1]):
            return states[-1]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no matching state; last {states[-1:]}")
        await asyncio.sleep(0.05)


def classroom_entry(state: dict, name: str) -> dict | None:
    return next((c for c in state.get("classrooms", []) if c["name"] == name), None)


async def test_a_classroom_that_drops_comes_back_to_its_seat_on_stage(
    server: RunningServer,
) -> None:
    teacher = LayoutPeer(
        server.url, server.token("r", "teacher"), ["send:microphone", "send:camera"]
    )
    token = server.token("r", "classroom", "村小")
    layout = ["send:microphone", "send:camera", "receive:teacher-camera"]
    room = LayoutPeer(server.url, token, layout)
    await teacher.join()
    await teacher.start()
    await room.join()
    await room.start()
    seat = room.joined["peer"]
    await teacher.signalling.send({"type": "stage", "peer": seat})
    await latest_state(teacher.signalling, lambda s: s["stage"] and s["stage"]["peer"] == seat)

    await room.close(leave=False)  # the line drops: no goodbye
    state = await latest_state(
        teacher.signalling,
        lambda s: (classroom_entry(s, "村小") or {}).get("media") == "reconnecting",
    )
    assert state["stage"]["peer"] == seat, "the stage was lost while the classroom reconnects"

    again = LayoutPeer(server.url, token, layout, first=500)
    await again.join()
    assert again.joined["peer"] == seat
    await again.start()
    state = await latest_state(
        teacher.signalling,
        lambda s: (classroom_entry(s, "村小") or {}).get("media") == "connected",
    )
    entry = classroom_entry(state, "村小")
    assert entry is not None and entry["on_stage"]
    await again.wait_numbers("teacher-camera", lambda n: len(n) > 10)
    await again.close()
    await teacher.close()


async def test_a_dead_link_is_found_in_seconds_and_the_classroom_offers_again(
    server: RunningServer,
) -> None:
    teacher = Teacher(server.url, server.token("d", "teacher"))
    room = Classroom(server.url, server.token("d", "classroom"))
    await teacher.join()
    await teacher.publish()
    await room.join()
    await room.subscribe()
    await room.wait_frames(10)

    # The classroom's link dies silently: it sends nothing any more (no RTCP).
    async def nothing(data: bytes) -> None:
        return None

    for transceiver in room.pc.getTransceivers():
        transceiver.receiver.transport._send_rtp = nothing  # type: ignore[method-assign]
    died = time.monotonic()
    await latest_state(room.signalling, lambda s: s["media"] == "failed", timeout=15)
    noticed = time.monotonic() - died
    assert noticed < 10, f"the dead link took {noticed:.1f} s to notice"

    # the client offers again on a new connection, and the lesson goes on
    await room.pc.close()
    fresh = Classroom(server.url, room.token)
    fresh.signalling = room.signalling
    await fresh.subscribe()
    await fresh.wait_frames(10)
    await fresh.close()
    await teacher.close()


async def test_after_a_restart_the_lesson_comes_back_as_it_was(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    runner, server = await start_server(settings)
    port = int(server.url.rsplit(":", 1)[1])
    teacher_token = server.token("s", "teacher", "王老师")
    room_token = server.token("s", "classroom", "村小")
    teacher = SignallingClient(server.url)
    room = SignallingClient(server.url)
    for client, token in ((teacher, teacher_token), (room, room_token)):
        await client.connect()
        await client.send({"type": "join", "token": token})
    seat = (await room.wait_for("joined"))["peer"]
    await teacher.wait_for("joined")
    await room.send({"type": "hand", "up": True})
    await latest_state(teacher, lambda s: s.get("hands"))
    await teacher.send({"type": "mute", "peer": seat, "on": True})
    await latest_state(room, lambda s: s["you"]["muted"])
    await runner.cleanup()  # the server stops (as on SIGTERM)
    await teacher.close()
    await room.close()

    restarted = settings.replace("server", port=port)
    runner, server = await start_server(restarted)
    try:
        again = SignallingClient(server.url)
        await again.connect()
        await again.send({"type": "join", "token": room_token})
        assert (await again.wait_for("joined"))["peer"] == seat
        state = await latest_state(again, lambda s: "you" in s)
        assert state["you"]["muted"] is True, "the mute did not survive the restart"
        assert state["you"]["hand"] is True, "the raised hand did not survive the restart"
        assert state["teacher"]["reconnecting"] is True
        await again.close(leave=True)
    finally:
        await runner.cleanup()
