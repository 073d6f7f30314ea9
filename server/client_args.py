"""What `zhuandi classroom` was asked to do: the join URL and the options, checked
before anything connects, with exit codes and messages a user can act on."""

import urllib.parse
from dataclasses import dataclass

import av

from recorder.muxer import container_format

EXIT_OK, EXIT_FATAL, EXIT_USAGE = 0, 1, 2
ROLES = ("teacher", "classroom", "observer")


class ClientError(Exception):
    def __init__(self, message: str, code: int = EXIT_FATAL) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class JoinUrl:
    origin: str  # http(s)://host:port
    lesson: str
    role: str
    token: str

    @property
    def websocket(self) -> str:
        return "ws" + self.origin.removeprefix("http") + "/ws"  # wss for https


def parse_join_url(url: str) -> JoinUrl:
    """`http(s)://host:port/lesson/{id}/{role}?token=…`, as `zhuandi token` prints."""
    shape = "expected http(s)://HOST:PORT/lesson/ID/ROLE?token=…"
    parts = urllib.parse.urlsplit(url.strip())
    segments = [urllib.parse.unquote(s) for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"not a join URL: {url!r} ({shape})", EXIT_USAGE)
    if len(segments) != 3 or segments[0] != "lesson":
        raise ClientError(f"not a join URL: {url!r} ({shape})", EXIT_USAGE)
    if segments[2] not in ROLES:
        raise ClientError(f"unknown role {segments[2]!r} in the URL", EXIT_USAGE)
    token = urllib.parse.parse_qs(parts.query).get("token", [""])[0]
    if not token:
        raise ClientError("the URL has no token (…?token=…)", EXIT_USAGE)
    return JoinUrl(f"{parts.scheme}://{parts.netloc}", segments[1], segments[2], token)


def check_options(join: JoinUrl, record: str | None, publish: str | None) -> None:
    if publish is not None and join.role == "observer":
        raise ClientError(
            "an observer only receives: --publish needs a teacher or classroom URL", EXIT_USAGE
        )
    if join.role == "teacher" and publish is None:
        raise ClientError("a teacher URL needs --publish FILE (what to send)", EXIT_USAGE)
    if join.role == "teacher" and record is not None:
        raise ClientError("--record needs a classroom or observer URL", EXIT_USAGE)
    if record is not None:
        try:
            container_format(record, None)
        except ValueError as exc:
            raise ClientError(str(exc), EXIT_USAGE) from None
    if publish is not None:
        try:
            with av.open(publish) as container:
                if not (container.streams.video or container.streams.audio):
                    raise ClientError(f"{publish} has no audio or video", EXIT_USAGE)
        except (OSError, av.FFmpegError) as exc:
            raise ClientError(f"cannot play {publish}: {exc}", EXIT_USAGE) from None
