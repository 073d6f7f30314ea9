"""ICE against the real server: a client whose candidates the server cannot use
(a browser's mDNS host names, from another network) still connects, from its own
connectivity checks."""

import asyncio
import time

import pytest
from aiortc import RTCSessionDescription

from tests.conftest import RunningServer
from tests.peers import Classroom, Teacher

pytestmark = pytest.mark.timeout(60)


def without_candidates(sdp: str) -> str:
    """The SDP with every candidate taken out, as the server sees a browser's offer
    whose only candidates are mDNS names it cannot resolve."""
    kept = [
        line
        for line in sdp.splitlines()
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    ]
    return "\r\n".join(kept) + "\r\n"


async def test_a_client_whose_candidates_are_unusable_connects_from_its_checks(
    server: RunningServer,
) -> None:
    """End-of-candidates arrives before the client's first check: the server must
    wait for the check (a peer-reflexive candidate), not give up at once. (It gave
    up at once, and Chromium then waited ~15 s before offering again.)"""
    teacher = Teacher(server.url, server.token("ice", "teacher"))
    room = Classroom(server.url, server.token("ice", "classroom"))
    try:
        await teacher.join()
        await teacher.publish()
        await room.join()
        room.pc.addTransceiver("audio", direction="recvonly")
        room.pc.addTransceiver("video", direction="recvonly")
        await room.pc.setLocalDescription(await room.pc.createOffer())
        offer = without_candidates(room.pc.localDescription.sdp)
        await room.signalling.send({"type": "offer", "sdp": offer})
        await room.signalling.send({"type": "candidate", "candidate": None})
        answer = await room.signalling.wait_for("answer", timeout=15)
        await asyncio.sleep(0.3)  # the end of candidates is in before any check
        started = time.monotonic()
        await room.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await room.wait_connected(timeout=10)
        await room.wait_frames(10)
        assert time.monotonic() - started < 5
        lesson = server.lessons.get("ice")
        assert lesson is not None
        states = [p.media_state for p in lesson.peers.values() if p.role == "classroom"]
        assert states == ["connected"]
    finally:
        await room.close()
        await teacher.close()
