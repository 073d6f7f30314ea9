"""Administrator accounts and their server-side sessions.

Two roles: a county administrator sees and manages everything; a school
administrator only their school's classrooms, teachers, lessons and figures.
Passwords are stored as scrypt hashes (hashlib, RFC 7914 parameters N=2^14, r=8,
p=1). A session is a random id in an HttpOnly cookie; only its SHA-256 is stored,
with the session's CSRF token and its expiry.
"""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from server.database import connect, transaction
from server.directory import DirectoryError, check_id

ROLES = ("county", "school")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS admins (
    login TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('county', 'school')),
    school TEXT REFERENCES schools (id),
    password TEXT NOT NULL,
    created REAL NOT NULL,
    CHECK ((role = 'county') = (school IS NULL))
);
CREATE TABLE IF NOT EXISTS admin_sessions (
    id_hash TEXT PRIMARY KEY,
    login TEXT NOT NULL REFERENCES admins (login) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Admin:
    login: str
    role: str  # county or school
    school: str | None  # the school of a school administrator


@dataclass(frozen=True)
class Session:
    admin: Admin
    csrf: str
    expires: float


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    derived = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(derived)]
    )


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        derived = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(derived, base64.b64decode(expected))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Checked against when the login is unknown, so that both answers take as long.
_DUMMY = hash_password(secrets.token_urlsafe(12))


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Admins:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, login: str, role: str, school: str | None, password: str, now: float) -> Admin:
        check_id("login", login)
        if role not in ROLES:
            raise DirectoryError("bad_role", f"the role must be one of {', '.join(ROLES)}")
        if (role == "school") != (school is not None):
            raise DirectoryError("bad_role", "a school administrator needs a school, only they")
        _check_password(password)
        with transaction(self._db):
            if school is not None and (
                self._db.execute("SELECT 1 FROM schools WHERE id = ?", (school,)).fetchone() is None
            ):
                raise DirectoryError("not_found", f"there is no school {school}", 404)
            if self.get(login) is not None:
                raise DirectoryError("exists", f"administrator {login} already exists", 409)
            self._db.execute(
                "INSERT INTO admins (login, role, school, password, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (login, role, school, hash_password(password), now),
            )
        return Admin(login, role, school)

    def get(self, login: str) -> Admin | None:
        row = self._db.execute(
            "SELECT login, role, school FROM admins WHERE login = ?", (login,)
        ).fetchone()
        return None if row is None else Admin(str(row[0]), str(row[1]), row[2])

    def all(self) -> list[Admin]:
        rows = self._db.execute("SELECT login, role, school FROM admins ORDER BY login")
        return [Admin(str(r[0]), str(r[1]), r[2]) for r in rows]

    def remove(self, login: str) -> bool:
        return self._db.execute("DELETE FROM admins WHERE login = ?", (login,)).rowcount > 0

    def set_password(self, login: str, password: str) -> None:
        _check_password(password)
        cursor = self._db.execute(
            "UPDATE admins SET password = ? WHERE login = ?", (hash_password(password), login)
        )
        if cursor.rowcount == 0:
            raise DirectoryError("not_found", f"there is no administrator {login}", 404)
        # a new password ends every session opened with the old one
        self._db.execute("DELETE FROM admin_sessions WHERE login = ?", (login,))

    def authenticate(self, login: str, password: str) -> Admin | None:
        """The administrator, if the password is theirs. Slow on purpose (scrypt):
        run it off the event loop."""
        row = self._db.execute("SELECT password FROM admins WHERE login = ?", (login,)).fetchone()
        ok = check_password(password, str(row[0]) if row else _DUMMY)
        return self.get(login) if ok and row is not None else None

    # -- sessions ----------------------------------------------------------------

    def open_session(self, admin: Admin, now: float, ttl: float) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        self._db.execute("DELETE FROM admin_sessions WHERE expires <= ?", (now,))
        self._db.execute(
            "INSERT INTO admin_sessions (id_hash, login, csrf, created, expires) "
            "VALUES (?, ?, ?, ?, ?)",
            (_digest(session_id), admin.login, csrf, now, now + ttl),
        )
        return session_id, Session(admin, csrf, now + ttl)

    def session(self, session_id: str, now: float) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        row = self._db.execute(
            "SELECT a.login, a.role, a.school, s.csrf, s.expires FROM admin_sessions s "
            "JOIN admins a ON a.login = s.login WHERE s.id_hash = ? AND s.expires > ?",
            (_digest(session_id), now),
        ).fetchone()
        if row is None:
            return None
        return Session(Admin(str(row[0]), str(row[1]), row[2]), str(row[3]), float(row[4]))

    def close_session(self, session_id: str) -> None:
        self._db.execute("DELETE FROM admin_sessions WHERE id_hash = ?", (_digest(session_id),))


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise DirectoryError(
            "bad_password", f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )
