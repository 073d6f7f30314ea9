"""HTTP security: response headers (a CSP without inline scripts), the WebSocket
origin check, and per-connection rate limits."""

import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from server.errors import UserError

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "worker-src 'self' blob:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)


def security_headers(tls: bool) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
            _decorate(response, tls)
            raise
        _decorate(response, tls)
        return response

    return middleware


def _decorate(response: web.StreamResponse, tls: bool) -> None:
    if response.prepared:
        return  # a WebSocket or a streamed file: headers already sent
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # Join links carry tokens in their query: never send them on as a Referer.
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if tls:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    """A browser's WebSocket must come from one of our own pages (or an allowed
    origin, for a reverse proxy). Scripts and the Python client send no Origin and
    are let through: they authenticate with their token like everyone else."""
    origin = request.headers.get("Origin")
    if origin is None or origin in allowed:
        return
    host = request.headers.get("Host", "")
    try:
        parsed = URL(origin)
        own = URL(f"http://{host}")
    except ValueError:
        raise UserError("bad_origin", "the page's origin is not valid", status=403) from None
    same_host = parsed.host is not None and parsed.host == own.host
    # behind a TLS proxy the Host header may carry no port: then the host decides
    same_port = own.explicit_port is None or parsed.port == own.explicit_port
    if not (same_host and same_port):
        raise UserError("bad_origin", f"connections from {origin} are not allowed", status=403)


class RateLimit:
    """A token bucket: `rate` messages a second, bursts of `burst`."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()
        self.refused = 0

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.refused += 1
        return False
