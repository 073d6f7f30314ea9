"""Signed join tokens (JWT, HS256): lesson, role, name and expiry."""

import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

from server.errors import UserError

ROLES = ("teacher", "classroom", "observer")
LESSON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_NAME = 64
ISSUER = "zhuandi"
ANY_LESSON = "*"  # an observer token for every live lesson


class TokenError(UserError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(
            code, message, fatal=True, status=401 if code != "token_wrong_role" else 403
        )


@dataclass(frozen=True)
class Grant:
    lesson: str
    role: str
    name: str
    expires: float
    token_id: str


class Tokens:
    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock

    def issue(
        self, lesson: str, role: str, name: str, ttl: float, token_id: str | None = None
    ) -> str:
        """A join token. Observers (巡课) may get lesson "*": any live lesson. A
        classroom's seat is its token's id: a `token_id` given again (a kiosk's
        classroom) takes the same seat."""
        if lesson == ANY_LESSON and role == "observer":
            pass
        elif not LESSON_ID.match(lesson):
            raise ValueError(f"bad lesson id {lesson!r}: use 1-64 letters, digits, '-' or '_'")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"a name must have 1 to {MAX_NAME} characters")
        now = int(self._clock())
        claims = {
            "iss": ISSUER,
            "lesson": lesson,
            "role": role,
            "name": name,
            "iat": now,
            "exp": now + int(ttl),
            "jti": token_id or secrets.token_urlsafe(9),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: object) -> Grant:
        if not token:
            raise TokenError("token_missing", "no token was given; open the link you were sent")
        if not isinstance(token, str) or len(token) > 4096:
            raise TokenError("token_invalid", "the token is not a valid join token")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "lesson", "role", "name"], "verify_exp": False},
            )
        except jwt.InvalidTokenError:
            raise TokenError("token_invalid", "the token is not a valid join token") from None
        lesson, role, name, exp = (
            claims.get("lesson"),
            claims.get("role"),
            claims.get("name"),
            claims.get("exp"),
        )
        if (
            not isinstance(lesson, str)
            or not (LESSON_ID.match(lesson) or (lesson == ANY_LESSON and role == "observer"))
            or role not in ROLES
            or not isinstance(name, str)
            or not isinstance(exp, int | float)
        ):
            raise TokenError("token_invalid", "the token is not a valid join token")
        if exp <= self._clock():
            expired = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(exp))
            raise TokenError("token_expired", f"the token expired at {expired}; ask for a new link")
        return Grant(lesson, str(role), name[:MAX_NAME], float(exp), str(claims.get("jti", "")))

    def check(self, grant: Grant, *, lesson: str | None = None, role: str | None = None) -> None:
        """Refuse a grant used for another lesson or on another role's page."""
        if lesson is not None and grant.lesson not in (lesson, ANY_LESSON):
            raise TokenError("token_wrong_lesson", "this link belongs to another lesson")
        if role is not None and grant.role != role:
            raise TokenError(
                "token_wrong_role", f"this link is for a {grant.role}, not for a {role}"
            )


def load_or_create_secret(data_dir: Path) -> str:
    """The token secret kept in DATA_DIR/secret.key, generated on first run.

    Processes that start together on a fresh data directory (the front and its
    media workers, or a script issuing tokens) agree on one secret: it is written
    whole to a private file and linked into place, and whoever loses the race
    reads the winner's."""
    path = data_dir / "secret.key"
    for _ in range(3):
        try:
            secret = path.read_text().strip()
        except FileNotFoundError:
            pass
        else:
            if len(secret) >= 32:
                return secret
            path.unlink(missing_ok=True)  # an empty or truncated file from an old crash
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        draft = data_dir / f".secret.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)
            return secret
        except FileExistsError:
            continue
        finally:
            draft.unlink()
    raise RuntimeError(f"{path}: cannot read or create the token secret")
