"""Signalling against the real server: refusals, malformed input, metrics."""

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.peers import Classroom, SignallingClient, Teacher

pytestmark = pytest.mark.timeout(90)


async def joined_client(server: RunningServer, token: str) -> SignallingClient:
    client = SignallingClient(server.url)
    await client.connect()
    await client.send({"type": "join", "token": token})
    return client


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda s: "", "token_missing"),
        (lambda s: "abc.def.ghi", "token_invalid"),
        (lambda s: s.tokens.issue("maths", "classroom", "x", 1) + "x", "token_invalid"),
    ],
)
async def test_a_bad_token_is_refused_and_the_socket_closed(
    server: RunningServer, make_token, code: str
) -> None:
    client = await joined_client(server, make_token(server))
    error = await client.wait_for("error")
    assert error["code"] == code and error["fatal"] is True
    await asyncio.sleep(0.2)
    assert client.closed
    await client.close()
    assert len(server.lessons) == 0


async def test_an_expired_token_is_refused(server: RunningServer) -> None:
    import time

    from server.tokens import Tokens

    past = Tokens(server.tokens._secret, clock=lambda: time.time() - 7200)
    client = await joined_client(server, past.issue("maths", "classroom", "x", 60))
    error = await client.wait_for("error")
    assert error["code"] == "token_expired"
    await client.close()


async def test_a_classroom_token_cannot_join_as_the_teacher(server: RunningServer) -> None:
    client = SignallingClient(server.url)
    await client.connect()
    token = server.token("maths", "classroom")
    await client.send({"type": "join", "token": token, "role": "teacher"})
    error = await client.wait_for("error")
    assert error["code"] == "token_wrong_role"
    await client.close()


async def test_a_classroom_cannot_publish_media(server: RunningServer) -> None:
    """A classroom's sendonly offer gets an answer that accepts nothing from it."""
    teacher = Teacher(server.url, server.token("maths", "classroom", "impostor"))
    try:
        await teacher.join()
        await teacher.publish()
        await asyncio.sleep(1.5)
        lesson = server.lessons.get("maths")
        assert lesson is not None
        assert not lesson.live
        assert all(not source.live for source in lesson.sources.values())
    finally:
        await teacher.close()


async def test_messages_before_join_are_refused(server: RunningServer) -> None:
    client = SignallingClient(server.url)
    await client.connect()
    await client.send({"type": "offer", "sdp": "v=0"})
    error = await client.wait_for("error")
    assert error["code"] == "not_joined"
    await client.send({"type": "join", "token": server.token("maths", "classroom")})
    await client.wait_for("joined")
    await client.close()


MALFORMED = [
    ("{", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('"join"', "JSON object"),
    ("{}", "'type'"),
    ('{"type": 5}', "'type'"),
    ('{"type": "dance"}', "'dance'"),
    ('{"type": "offer"}', "'sdp'"),
    ('{"type": "offer", "sdp": 12}', "offer.sdp"),
    ('{"type": "offer", "sdp": "hello"}', "offer"),
    ('{"type": "offer", "sdp": "' + "v=0\\r\\n" * 7000 + '"}', "too large"),
    ('{"type": "candidate", "candidate": "x"}', "candidate"),
    (
        '{"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp", "sdpMid": "0"}}',
        "offer",
    ),
    ('{"type": "join", "token": "again"}', "already joined"),
    ('{"type": "' + "x" * 1000 + '"}', "unknown message type"),
    (
        '{"type": "offer", "sdp": "v=0\\r\\n'
        'm=application 9 UDP/DTLS/SCTP webrtc-datachannel\\r\\n"}',
        "offer",
    ),
    (
        '{"type": "offer", "sdp": ' + json.dumps("v=0\r\n" * 3 + "m=video 9 RTP/AVP 0\r\n") + "}",
        "offer",
    ),
]


async def test_a_burst_of_malformed_messages_leaves_the_lesson_serving(
    server: RunningServer,
) -> None:
    teacher = Teacher(server.url, server.token("maths", "teacher"))
    classroom = Classroom(server.url, server.token("maths", "classroom"))
    vandal = await joined_client(server, server.token("maths", "classroom", "vandal"))
    try:
        await vandal.wait_for("joined")
        await teacher.join()
        await teacher.publish()
        for text, named in MALFORMED * 5:
            await asyncio.sleep(0.06)  # under the rate limit: each gets its own answer
            await vandal.send_raw(text)
            error = await vandal.wait_for("error")
            assert error["code"] not in ("internal",), error
            assert named.lower() in error["message"].lower() or not named, (text[:60], error)
            assert "Traceback" not in error["message"]
        await vandal.send({"type": "ping"})
        await vandal.wait_for("pong")
        await classroom.join()
        await classroom.subscribe()
        await classroom.wait_frames(30)
    finally:
        for peer in (teacher, classroom):
            await peer.close()
        await vandal.close(leave=True)
    await asyncio.sleep(0.3)
    assert len(server.lessons) == 0, "a lesson outlived its peers"


async def test_a_binary_frame_closes_only_that_socket(server: RunningServer) -> None:
    client = await joined_client(server, server.token("maths", "classroom"))
    await client.wait_for("joined")
    other = await joined_client(server, server.token("maths", "classroom", "other"))
    await other.wait_for("joined")
    assert client.ws is not None
    await client.ws.send_bytes(b"\x00\x01")
    error = await client.wait_for("error")
    assert error["code"] == "bad_message"
    await asyncio.sleep(0.2)
    assert client.closed
    await other.send({"type": "ping"})
    await other.wait_for("pong")
    await client.close()
    await other.close()


async def test_the_teacher_reopening_the_page_replaces_the_old_one(server: RunningServer) -> None:
    first = await joined_client(server, server.token("maths", "teacher"))
    await first.wait_for("joined")
    second = await joined_client(server, server.token("maths", "teacher"))
    await second.wait_for("joined")
    error = await first.wait_for("error")
    assert error["code"] == "replaced"
    lesson = server.lessons.get("maths")
    assert lesson is not None and len(lesson.peers) == 1
    await first.close()
    await second.close()


async def test_the_teacher_sees_classrooms_come_and_go(server: RunningServer) -> None:
    teacher = await joined_client(server, server.token("maths", "teacher"))
    await teacher.wait_for("joined")
    room = await joined_client(server, server.token("maths", "classroom", "村小一班"))
    await room.wait_for("joined")
    observer = await joined_client(server, server.token("maths", "observer", "教研员"))
    await observer.wait_for("joined")
    for _ in range(20):
        state = await teacher.wait_for("state")
        if state["classrooms"]:
            break
    assert [c["name"] for c in state["classrooms"]] == ["村小一班"], "observers must stay unlisted"
    room_state = await room.wait_for("state")
    assert "classrooms" not in room_state
    assert room_state["teacher"]["present"] is True
    await room.close(leave=True)
    for _ in range(20):
        state = await teacher.wait_for("state")
        if not state["classrooms"]:
            break
    assert state["classrooms"] == []
    await teacher.close()
    await observer.close()


async def test_health_and_metrics_report_the_lesson(server: RunningServer) -> None:
    teacher = Teacher(server.url, server.token("maths", "teacher"))
    classroom = Classroom(server.url, server.token("maths", "classroom"))
    try:
        await teacher.join()
        await classroom.join()
        await classroom.subscribe()
        await teacher.publish()
        await classroom.wait_frames(30)
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/healthz") as response:
                health = await response.json()
            async with http.get(server.url + "/metrics") as response:
                metrics = await response.text()
    finally:
        await teacher.close()
        await classroom.close()
    assert health == {"status": "ok", "lessons": 1, "peers": 2}
    values = {
        line.split()[0]: float(line.split()[1])
        for line in metrics.splitlines()
        if line and not line.startswith("#")
    }
    assert values["zhuandi_lessons"] == 1
    assert values['zhuandi_peers{role="classroom"}'] == 1
    assert values["zhuandi_forwarded_packets_total"] > 30
    assert values["zhuandi_forwarded_bytes_total"] > 10000
    assert values['zhuandi_keyframe_requests_total{direction="to_publishers"}'] >= 1
    # the forwarding delay of every frame that reached a subscriber (video and
    # audio), and the loop's lag, as histograms whose buckets add up
    for name, at_least in (("zhuandi_forward_delay_seconds", 30), ("zhuandi_loop_lag_seconds", 1)):
        count = values[f"{name}_count"]
        assert count >= at_least, (name, count)
        assert values[f'{name}_bucket{{le="+Inf"}}'] == count
        buckets = sorted(
            (float(key.split('le="')[1].rstrip('"}')), value)
            for key, value in values.items()
            if key.startswith(f"{name}_bucket")
        )
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
        assert 0 < values[f"{name}_sum"] / count < 1.0


async def test_a_flood_of_messages_is_rate_limited_then_cut_off(server: RunningServer) -> None:
    flood = await joined_client(server, server.token("maths", "classroom", "flood"))
    await flood.wait_for("joined")
    calm = await joined_client(server, server.token("maths", "classroom", "calm"))
    await calm.wait_for("joined")
    for _ in range(400):
        await flood.send({"type": "ping"})
    error = await flood.wait_for("error", code="rate_limited")
    assert "too many" in error["message"]
    await asyncio.sleep(0.5)
    assert flood.closed, "a client that keeps flooding is disconnected"
    await calm.send({"type": "ping"})
    await calm.wait_for("pong")
    await flood.close()
    await calm.close()


async def test_a_socket_from_another_sites_page_is_refused(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(server.url + "/ws", origin="https://evil.example")
        assert refused.value.status == 403
        own = server.url.replace("127.0.0.1", "127.0.0.1")
        async with http.ws_connect(server.url + "/ws", origin=own) as ws:
            await ws.send_json({"type": "ping"})
            assert (await ws.receive_json())["code"] == "not_joined"


async def test_pages_carry_security_headers(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.page("maths", "classroom")) as response:
            headers = response.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
