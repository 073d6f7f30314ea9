"""The TURN credentials that `joined` gives browsers, against a real coturn (Debian's
turnserver, use-auth-secret): it relays for them over UDP and TCP, and refuses
them once expired or when signed with another secret."""

import asyncio
import contextlib
from pathlib import Path

import pytest
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint

from server.turn import turn_credentials
from tests.conftest import make_settings, start_server
from tests.coturn import Coturn, skip_without_coturn
from tests.peers import SignallingClient

pytestmark = pytest.mark.timeout(60)


async def allocate(turn: Coturn, username: str, password: str, transport: str) -> tuple[str, int]:
    """A relayed address from `turn`, as a browser's ICE agent asks for one."""
    relay, _ = await asyncio.wait_for(
        create_turn_endpoint(
            asyncio.DatagramProtocol,
            (turn.host, turn.port),
            username=username,
            password=password,
            transport=transport,
        ),
        10,
    )
    try:
        address: tuple[str, int] = relay.get_extra_info("sockname")
        return address
    finally:
        relay.close()
        await asyncio.sleep(0.1)  # let the deallocation go out


async def refused(turn: Coturn, username: str, password: str, transport: str) -> int:
    """The error code coturn refuses an allocation with."""
    with pytest.raises(TransactionFailed) as failure:
        await allocate(turn, username, password, transport)
    code: int = failure.value.response.attributes["ERROR-CODE"][0]
    return code


async def test_coturn_relays_with_the_credentials_a_page_is_given(tmp_path: Path) -> None:
    skip_without_coturn()
    with Coturn(tmp_path) as turn:
        settings = make_settings(tmp_path, media=turn.media_settings("udp", "tcp"))
        runner, server = await start_server(settings)
        client = SignallingClient(server.url)
        try:
            await client.connect()
            await client.send({"type": "join", "token": server.token("maths", "classroom")})
            joined = await client.wait_for("joined")
        finally:
            with contextlib.suppress(Exception):
                await client.close(leave=True)
            await runner.cleanup()
        (entry,) = joined["iceServers"]
        assert entry["urls"] == turn.urls("udp", "tcp")
        for transport in ("udp", "tcp"):
            host, port = await allocate(turn, entry["username"], entry["credential"], transport)
            assert host == "127.0.0.1" and port > 0, turn.log_tail()


async def test_coturn_refuses_expired_and_forged_credentials(tmp_path: Path) -> None:
    skip_without_coturn()
    with Coturn(tmp_path) as turn:
        for transport in ("udp", "tcp"):
            expired = turn_credentials(turn.secret, "maths-1", ttl=-60)
            assert await refused(turn, *expired, transport) == 401
            forged = turn_credentials("not the county's secret", "maths-1", ttl=600)
            assert await refused(turn, *forged, transport) == 401
            fresh = turn_credentials(turn.secret, "maths-1", ttl=600)
            assert (await allocate(turn, *fresh, transport))[0] == "127.0.0.1"
