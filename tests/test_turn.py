"""TURN REST API credentials (coturn use-auth-secret), as browsers get them."""

import base64
import hashlib
import hmac

from config import load_settings
from server.turn import ice_servers_for, turn_credentials


def test_credentials_are_an_hmac_of_an_expiring_username() -> None:
    username, password = turn_credentials("s3cret", "lesson-peer", 3600, now=1_000_000)
    assert username == "1003600:lesson-peer"
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest())
    assert password == expected.decode()


def test_browsers_get_static_servers_and_fresh_turn_credentials() -> None:
    settings = load_settings(
        None,
        {},
        {
            "media": {
                "ice_servers": [{"urls": ["stun:stun.school.cn:3478"]}],
                "turn_urls": ["turn:turn.school.cn:3478?transport=tcp", "turns:turn.school.cn:443"],
                "turn_secret": "s3cret",
                "turn_ttl": "2h",
            }
        },
    )
    servers = ice_servers_for(settings.media, "maths-1")
    assert servers[0] == {"urls": ["stun:stun.school.cn:3478"]}
    turn = servers[1]
    assert turn["urls"] == ["turn:turn.school.cn:3478?transport=tcp", "turns:turn.school.cn:443"]
    expiry, user = turn["username"].split(":")
    assert user == "maths-1" and int(expiry) > 0
    digest = hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
