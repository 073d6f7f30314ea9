"""The authorization matrix: every kind of visitor against every HTTP route and every
signalling control message, allowed or refused as designed. The tables below are
the design; a route the app has that no row covers fails the test, so a new route
must be given its row.

Visitors, and how each presents itself (everyone sends what they have everywhere:
a join token as `?token=` and `Authorization: Bearer`, a device token as `?device=`
and `Authorization: Bearer`, an administrator their session cookie and CSRF token):

    teacher, classroom, observer  join tokens for the lesson "maths"
    observer_all                  an observer token for every lesson ("*", 巡课)
    school_admin, county_admin    administrators' sessions (school "east"; county)
    device                        classroom east-1's device token (its kiosk PC)
    anonymous                     nothing
    forged                        a teacher token for "maths" signed with another secret
    expired                       a teacher token for "maths" that has expired
    revoked_device                classroom west-1's device token, revoked

Allowed means the request reached its handler: any answer but 401, 403 or a
redirect to the login page (a 400 for an empty form, a 404 or 409 for something
not there, are the handler's). Refused means 401, 403, or, for an administration
page opened without a session, the redirect to the login page.
"""

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiortc import RTCPeerConnection

from server.authz import ADMIN_ROUTES, COUNTY_ROLE, POLICY, SCHOOL_ROLE
from server.keys import LIBRARY
from server.library_store import LibraryEntry
from tests.county import Browser, CountyServer, county_server

pytestmark = pytest.mark.timeout(120)

LESSON = "maths"
PUBLIC = "open1"  # a public library lesson
VISITORS = (
    "teacher",
    "classroom",
    "observer",
    "observer_all",
    "school_admin",
    "county_admin",
    "device",
    "anonymous",
    "forged",
    "expired",
    "revoked_device",
)
EVERYONE = frozenset(VISITORS)
LESSON_TOKENS = frozenset({"teacher", "classroom", "observer"})
WATCHERS = frozenset({"teacher", "observer", "observer_all"})
ADMINS = {"school_admin": SCHOOL_ROLE, "county_admin": COUNTY_ROLE}

# -- the design: HTTP ------------------------------------------------------------
# (method, path as requested, the route it exercises, who is allowed). {room} is
# the visitor's own classroom for device tokens (east-1, or west-1 for the revoked
# one), east-1 for everyone else.


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    route: str
    allowed: frozenset[str]
    body: Any = None


HTTP: list[Row] = [
    # public pages and monitoring (a county keeps the server on its own network)
    Row("GET", "/", "/", EVERYONE),
    Row("GET", "/healthz", "/healthz", EVERYONE),
    Row("GET", "/metrics", "/metrics", EVERYONE),
    Row("GET", "/admin/login", "/admin/login", EVERYONE),
    # a lesson page opens only with a token for that lesson and that page's role
    Row("GET", f"/lesson/{LESSON}/teacher", "/lesson/{lesson}/teacher", frozenset({"teacher"})),
    Row(
        "GET", f"/lesson/{LESSON}/classroom", "/lesson/{lesson}/classroom", frozenset({"classroom"})
    ),
    Row(
        "GET",
        f"/lesson/{LESSON}/observer",
        "/lesson/{lesson}/observer",
        frozenset({"observer", "observer_all"}),
    ),
    Row("GET", "/observe", "/observe", frozenset({"observer", "observer_all"})),
    # a live lesson's figures and the list of live lessons: its teacher and observers
    Row("GET", f"/api/lessons/{LESSON}/stats", "/api/lessons/{lesson}/stats", WATCHERS),
    Row("GET", "/api/live", "/api/live", WATCHERS),
    # the library: public lessons for everyone; a private one with a token for it
    # (any role). A "*" observer token is for live lessons only, and administrators
    # have no library view of their own yet (server/library_access.py).
    Row("GET", "/library", "/library", EVERYONE),
    Row("GET", "/api/library", "/api/library", EVERYONE),
    Row("GET", f"/library/{PUBLIC}", "/library/{lesson}", EVERYONE),
    Row("GET", f"/library/{LESSON}", "/library/{lesson}", LESSON_TOKENS),
    Row("GET", f"/api/library/{PUBLIC}", "/api/library/{lesson}", EVERYONE),
    Row("GET", f"/api/library/{LESSON}", "/api/library/{lesson}", LESSON_TOKENS),
    Row(
        "GET",
        f"/library/{PUBLIC}/files/thumbnail.jpg",
        "/library/{lesson}/files/{path}",
        EVERYONE,
    ),
    Row(
        "GET",
        f"/library/{LESSON}/files/thumbnail.jpg",
        "/library/{lesson}/files/{path}",
        LESSON_TOKENS,
    ),
    # the kiosk: only the classroom's own device token, not revoked
    Row("GET", "/room/{room}", "/room/{classroom}", frozenset({"device"})),
    Row("GET", "/api/room/{room}", "/api/room/{classroom}", frozenset({"device"})),
    Row("GET", "/api/room/{room}/join", "/api/room/{classroom}/join", frozenset({"device"})),
    Row(
        "POST",
        "/api/room/{room}/report",
        "/api/room/{classroom}/report",
        frozenset({"device"}),
        {"lesson": LESSON},
    ),
    Row(
        "GET",
        "/api/room/{room}/check/download?bytes=100",
        "/api/room/{classroom}/check/download",
        frozenset({"device"}),
    ),
    Row(
        "POST",
        "/api/room/{room}/check/upload",
        "/api/room/{classroom}/check/upload",
        frozenset({"device"}),
        b"x" * 100,
    ),
    Row(
        "POST",
        "/api/room/{room}/check/echo",
        "/api/room/{classroom}/check/echo",
        frozenset({"device"}),
        {"sdp": "v=0"},
    ),
    Row("POST", "/api/room/{room}/check", "/api/room/{classroom}/check", frozenset({"device"}), {}),
    Row("GET", "/api/room/{room}/check", "/api/room/{classroom}/check", frozenset({"device"})),
]
# Routes left out of the HTTP table, and why.
NOT_IN_HTTP_TABLE = {
    ("GET", "/ws"): "the signalling socket: its own tables below",
    ("GET", "/static"): "the pages' scripts and styles, public",
    ("POST", "/admin/login"): "tries a password: tests/test_county_functional.py (logins)",
    ("POST", "/admin/logout"): "ends the session this test uses: test_county_functional.py",
}


def admin_rows(server: CountyServer) -> list[Row]:
    """Administration: POLICY in server/authz.py says which administrators may do
    each action; nobody else may do any (a join or a device token is no session)."""
    rows = []
    for route in server.app[ADMIN_ROUTES]:
        allowed = frozenset(name for name, role in ADMINS.items() if role in POLICY[route.action])
        path = route.path.replace("{report}", "rate")
        rows.append(
            Row(route.method, path, route.path, allowed, {} if route.method == "POST" else None)
        )
    return rows


# -- the design: signalling ------------------------------------------------------

JOINED = frozenset({"teacher", "classroom", "observer", "observer_all"})
# what `join` answers everyone else
JOIN_REFUSED = {
    "school_admin": "token_missing",
    "county_admin": "token_missing",
    "anonymous": "token_missing",
    "device": "token_invalid",
    "revoked_device": "token_invalid",
    "forged": "token_invalid",
    "expired": "token_expired",
}
# control messages: who may send each (refused: `forbidden`)
CONTROL: dict[str, tuple[dict[str, Any], frozenset[str]]] = {
    "quality": (
        {"type": "quality", "cap": "low"},
        frozenset({"classroom", "observer", "observer_all"}),
    ),
    "record": ({"type": "record", "on": False}, frozenset({"teacher"})),
    "hand": ({"type": "hand", "up": True}, frozenset({"classroom"})),
    "stage": ({"type": "stage", "peer": "{seat}"}, frozenset({"teacher"})),
    "mute": ({"type": "mute", "peer": "{seat}", "on": True}, frozenset({"teacher"})),
    "mute_all": ({"type": "mute_all", "on": False}, frozenset({"teacher"})),
    "chat": ({"type": "chat", "text": "你好"}, frozenset({"teacher", "classroom"})),
    "stop": ({"type": "stop"}, JOINED),
    "candidate": ({"type": "candidate", "candidate": None}, JOINED),
    "ping": ({"type": "ping"}, JOINED),
}
# media layouts (docs/protocol.md, "Media layout"): who may offer each m-line
# (refused: `bad_sdp`)
LAYOUTS: dict[str, frozenset[str]] = {
    "send:microphone": frozenset({"teacher", "classroom"}),
    "send:camera": frozenset({"teacher", "classroom"}),
    "send:courseware": frozenset({"teacher"}),
    "receive:teacher-audio": frozenset({"classroom", "observer", "observer_all"}),
    "receive:teacher-camera": frozenset({"classroom", "observer", "observer_all"}),
    "receive:courseware": frozenset({"classroom", "observer", "observer_all"}),
    "receive:stage-audio": frozenset({"classroom", "observer", "observer_all"}),
    "receive:stage-camera": JOINED,
    "receive:classroom-mix": frozenset({"teacher"}),
    "receive:grid": frozenset({"teacher"}),
}


# -- the visitors ----------------------------------------------------------------


@dataclass
class Visitor:
    name: str
    token: str | None = None  # a join token, or a device token
    device: bool = False
    room: str = "east-1"  # the classroom of a device token
    browser: Browser | None = None  # an administrator's logged-in session

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.browser is not None:
            headers["X-CSRF-Token"] = self.browser.csrf
            headers["Origin"] = self.browser.base
        return headers

    def query(self) -> dict[str, str]:
        if not self.token:
            return {}
        return {"device": self.token} if self.device else {"token": self.token}


async def visitors(server: CountyServer) -> dict[str, Visitor]:
    tokens, now = server.tokens, server.clock.now()
    directory = server.county.directory
    forged = jwt.encode(
        {"iss": "zhuandi", "lesson": LESSON, "role": "teacher", "name": "x", "iat": int(now),
         "exp": int(now) + 3600, "jti": "forged"},
        "not this server's secret, but long enough to look like one",
        algorithm="HS256",
    )  # fmt: skip
    revoked = directory.issue_token("west-1", now, rotate=True)
    directory.revoke_token("west-1")
    found = {
        "teacher": Visitor("teacher", tokens.issue(LESSON, "teacher", "王老师", 3600)),
        "classroom": Visitor("classroom", tokens.issue(LESSON, "classroom", "东村一班", 3600)),
        "observer": Visitor("observer", tokens.issue(LESSON, "observer", "教研员", 3600)),
        "observer_all": Visitor("observer_all", tokens.issue("*", "observer", "巡课", 3600)),
        "device": Visitor("device", directory.issue_token("east-1", now, rotate=True), True),
        "anonymous": Visitor("anonymous"),
        "forged": Visitor("forged", forged),
        "expired": Visitor("expired", tokens.issue(LESSON, "teacher", "王老师", -60)),
        "revoked_device": Visitor("revoked_device", revoked, True, "west-1"),
    }
    for name, login in (("school_admin", "east-admin"), ("county_admin", "county")):
        browser = Browser(server.url)
        await browser.login(login)
        found[name] = Visitor(name, browser=browser)
    assert set(found) == EVERYONE
    return found


def add_library_lessons(server: CountyServer) -> None:
    """A public lesson and a private one (the live lesson's own id), each with a file."""
    library = server.app[LIBRARY]
    for lesson, visibility in ((PUBLIC, "public"), (LESSON, "private")):
        library.repository.put(
            LibraryEntry(id=lesson, title=lesson, visibility=visibility, state="ready")
        )
        directory = library.root / lesson
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "thumbnail.jpg").write_bytes(b"\xff\xd8\xff\xd9")


# -- the HTTP side ---------------------------------------------------------------


async def request(server: CountyServer, visitor: Visitor, row: Row) -> tuple[int, str]:
    path = row.path.replace("{room}", visitor.room)
    url = server.url + path
    kwargs: dict[str, Any] = {"headers": visitor.headers(), "allow_redirects": False}
    query = visitor.query()
    if query:
        kwargs["params"] = query
    if isinstance(row.body, bytes):
        kwargs["data"] = row.body
    elif row.body is not None:
        kwargs["json"] = row.body
    if "?" in path and query:  # keep the row's own query and add the visitor's
        base, _, own = path.partition("?")
        url = server.url + base
        kwargs["params"] = {**dict(part.split("=", 1) for part in own.split("&")), **query}
    session = visitor.browser.session if visitor.browser is not None else None
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        async with session.request(row.method, url, **kwargs) as response:
            location = response.headers.get("Location", "")
            return response.status, location


def verdict(status: int, location: str) -> str:
    assert status < 500, f"server error {status}"
    if status in (401, 403) or (status in (302, 303) and location.startswith("/admin/login")):
        return "refused"
    return "allowed"


def http_rows(server: CountyServer) -> list[Row]:
    rows = [*HTTP, *admin_rows(server)]
    routes = {
        (route.method, route.resource.canonical)
        for route in server.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    covered = {(row.method, row.route) for row in rows} | set(NOT_IN_HTTP_TABLE)
    assert routes <= covered, f"routes without a row in the matrix: {sorted(routes - covered)}"
    return rows


# -- the signalling side --------------------------------------------------------


class Socket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def ask(self, message: dict[str, Any], timeout: float = 15.0) -> list[dict[str, Any]]:
        """Send `message` and a ping; what came back before the pong."""
        await self.ws.send_json(message)
        await self.ws.send_json({"type": "ping"})
        pongs = 2 if message.get("type") == "ping" else 1  # a ping's own pong comes first
        replies = []
        async with asyncio.timeout(timeout):
            while True:
                received = await self.ws.receive()
                if received.type != aiohttp.WSMsgType.TEXT:
                    replies.append({"type": "closed"})
                    return replies
                reply = json.loads(received.data)
                if reply.get("type") == "pong":
                    pongs -= 1
                    if pongs == 0:
                        return replies
                replies.append(reply)


def refusal(replies: list[dict[str, Any]], codes: set[str]) -> str | None:
    for reply in replies:
        if reply.get("type") == "error" and reply.get("code") in codes:
            return str(reply["code"])
    return None


def offer_for(entry: str) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    direction, _, name = entry.partition(":")
    audio = name == "microphone" or name.endswith(("-audio", "-mix"))
    pc.addTransceiver(
        "audio" if audio else "video", direction="sendonly" if direction == "send" else "recvonly"
    )
    return pc


# -- the tests -------------------------------------------------------------------


async def test_every_visitor_against_every_http_route(tmp_path: Path) -> None:
    async with county_server(tmp_path) as server:
        add_library_lessons(server)
        people = await visitors(server)
        holder = aiohttp.ClientSession()  # keeps the lesson live, for its statistics
        try:
            ws = await holder.ws_connect(server.url.replace("http", "ws", 1) + "/ws")
            await ws.send_json({"type": "join", "token": people["classroom"].token})
            assert (await ws.receive_json())["type"] == "joined"
            wrong = []
            for row in http_rows(server):
                for name in VISITORS:
                    status, location = await request(server, people[name], row)
                    expected = "allowed" if name in row.allowed else "refused"
                    got = verdict(status, location)
                    if got != expected:
                        wrong.append(f"{row.method} {row.path} as {name}: {status} ({got})")
            await ws.close()
        finally:
            await holder.close()
            for visitor in people.values():
                if visitor.browser is not None:
                    await visitor.browser.close()
    assert wrong == [], "\n".join(["the matrix differs from its design:", *wrong])


async def test_every_visitor_against_every_control_message(tmp_path: Path) -> None:
    async with county_server(tmp_path) as server:
        people = await visitors(server)
        url = server.url.replace("http", "ws", 1) + "/ws"
        wrong: list[str] = []
        sockets: dict[str, Socket] = {}
        async with aiohttp.ClientSession() as http:
            try:
                for name in VISITORS:
                    ws = await http.ws_connect(url)
                    join: dict[str, Any] = {"type": "join"}
                    token = people[name].token
                    if token:
                        join["token"] = token
                    if name == "observer_all":
                        join["lesson"] = LESSON
                    await ws.send_json(join)
                    first = await ws.receive_json()
                    if name in JOINED:
                        assert first["type"] == "joined", (name, first)
                        sockets[name] = Socket(ws)
                    else:
                        assert first.get("code") == JOIN_REFUSED[name], (name, first)
                        assert first.get("fatal") is True
                        await ws.close()
                lesson = server.lessons.get(LESSON)
                assert lesson is not None
                seat = next(k for k, s in lesson.seats.items() if s.role == "classroom")
                for kind, (message, allowed) in CONTROL.items():
                    sent = json.loads(json.dumps(message).replace("{seat}", seat))
                    for name, socket in sockets.items():
                        replies = await socket.ask(sent)
                        refused = refusal(replies, {"forbidden"})
                        if (refused is None) != (name in allowed):
                            wrong.append(f"{kind} as {name}: {replies}")
                for entry, allowed in LAYOUTS.items():
                    for name, socket in sockets.items():
                        pc = offer_for(entry)
                        try:
                            await pc.setLocalDescription(await pc.createOffer())
                            offer = {
                                "type": "offer",
                                "sdp": pc.localDescription.sdp,
                                "media": [entry],
                            }
                            replies = await socket.ask(offer)
                        finally:
                            await asyncio.shield(pc.close())
                        await socket.ask({"type": "stop"})
                        refused = refusal(replies, {"bad_sdp", "forbidden"})
                        answered = any(r.get("type") == "answer" for r in replies)
                        if (refused is None and answered) != (name in allowed):
                            wrong.append(f"offer {entry} as {name}: {replies}")
            finally:
                for socket in sockets.values():
                    with contextlib.suppress(ConnectionError):
                        await socket.ws.send_json({"type": "leave"})
                    await socket.ws.close()
                for visitor in people.values():
                    if visitor.browser is not None:
                        await visitor.browser.close()
        deadline = time.monotonic() + 10
        while server.lessons.get(LESSON) is not None:
            assert time.monotonic() < deadline, "the lesson outlived its peers"
            await asyncio.sleep(0.1)
    assert wrong == [], "\n".join(["the matrix differs from its design:", *wrong])
