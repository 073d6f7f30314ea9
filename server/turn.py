"""ICE servers for browsers, with short-lived TURN credentials.

coturn's TURN REST API (`use-auth-secret` with `static-auth-secret`): the username
is "<expiry unix time>:<user>", the password base64(HMAC-SHA1(secret, username)).
coturn checks both without asking us, and refuses them after the expiry, so a
credential that leaks from a page is useless a few hours later.
"""

import base64
import hashlib
import hmac
import time
from typing import Any

from config import MediaSettings, parse_duration


def turn_credentials(
    secret: str, user: str, ttl: float, now: float | None = None
) -> tuple[str, str]:
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(settings: MediaSettings, user: str) -> list[dict[str, Any]]:
    """The RTCIceServer list a browser gets in `joined`."""
    servers: list[dict[str, Any]] = []
    for server in settings.ice_servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username:
            entry["username"] = server.username
            entry["credential"] = server.credential
        servers.append(entry)
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(
            settings.turn_secret, user, parse_duration(settings.turn_ttl)
        )
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    return servers
