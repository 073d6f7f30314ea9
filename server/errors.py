"""The two kinds of error: the client broke the protocol, or a request is refused."""

from aiohttp import web
from aiohttp.typedefs import Handler


class UserError(Exception):
    """A well-formed request that is refused, or a malformed message. The client is
    told why, with a code, and the connection stays open."""

    def __init__(self, code: str, message: str, *, fatal: bool = False, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal
        self.status = status

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"type": "error", "code": self.code, "message": self.message}
        if self.fatal:
            data["fatal"] = True
        return data


class ProtocolError(Exception):
    """The client broke the protocol; the socket is closed (1002)."""


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map refused requests to JSON errors with the right status, never a traceback."""
    try:
        return await handler(request)
    except UserError as exc:
        return web.json_response({"error": exc.code, "message": exc.message}, status=exc.status)
