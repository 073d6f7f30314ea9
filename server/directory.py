"""The county's directory: schools, classrooms, teachers and subjects, and each
classroom's device token.

A classroom is a place with a device (the PC or TV that shows lessons), not a
person. Its device token is long-lived: the classroom's PC opens
/room/{classroom}?device=TOKEN once and keeps it all term. Only a SHA-256 of the
token is stored (it is 192 random bits, so a slow hash adds nothing); a token can
be revoked, and rotated (a new one replaces it at once).
"""

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from server.database import connect, transaction
from server.errors import UserError

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_NAME = 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS schools (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS classrooms (
    id TEXT PRIMARY KEY,
    school TEXT NOT NULL REFERENCES schools (id),
    name TEXT NOT NULL,
    token_hash TEXT,
    token_issued REAL,
    token_revoked INTEGER NOT NULL DEFAULT 0,
    last_seen REAL
);
CREATE TABLE IF NOT EXISTS teachers (
    id TEXT PRIMARY KEY,
    school TEXT NOT NULL REFERENCES schools (id),
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subjects (
    name TEXT PRIMARY KEY
);
"""


class DirectoryError(UserError):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message, status=status)


@dataclass(frozen=True)
class School:
    id: str
    name: str


@dataclass(frozen=True)
class Classroom:
    id: str
    school: str
    name: str
    token: str  # "active", "revoked" or "none"
    token_issued: float | None
    last_seen: float | None


@dataclass(frozen=True)
class Teacher:
    id: str
    school: str
    name: str


def check_id(kind: str, value: str) -> str:
    if not ID.match(value):
        raise DirectoryError("bad_id", f"{kind} id {value!r}: use 1-64 letters, digits, '-' or '_'")
    return value


def check_name(kind: str, value: str) -> str:
    value = " ".join(value.split())
    if not value or len(value) > MAX_NAME:
        raise DirectoryError("bad_name", f"a {kind} name must have 1 to {MAX_NAME} characters")
    return value


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Directory:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- schools, teachers, subjects ---------------------------------------------

    def add_school(self, school_id: str, name: str) -> School:
        school = School(check_id("school", school_id), check_name("school", name))
        self._insert(
            "school", "INSERT INTO schools (id, name) VALUES (?, ?)", school.id, school.name
        )
        return school

    def schools(self) -> list[School]:
        rows = self._db.execute("SELECT id, name FROM schools ORDER BY id").fetchall()
        return [School(str(r[0]), str(r[1])) for r in rows]

    def school(self, school_id: str) -> School | None:
        row = self._db.execute("SELECT id, name FROM schools WHERE id = ?", (school_id,)).fetchone()
        return None if row is None else School(str(row[0]), str(row[1]))

    def add_teacher(self, teacher_id: str, school: str, name: str) -> Teacher:
        teacher = Teacher(check_id("teacher", teacher_id), school, check_name("teacher", name))
        self._require_school(school)
        self._insert(
            "teacher",
            "INSERT INTO teachers (id, school, name) VALUES (?, ?, ?)",
            teacher.id,
            school,
            teacher.name,
        )
        return teacher

    def teachers(self, school: str | None = None) -> list[Teacher]:
        sql, args = "SELECT id, school, name FROM teachers", tuple[str, ...]()
        if school is not None:
            sql, args = sql + " WHERE school = ?", (school,)
        rows = self._db.execute(sql + " ORDER BY school, id", args).fetchall()
        return [Teacher(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def teacher(self, teacher_id: str) -> Teacher | None:
        row = self._db.execute(
            "SELECT id, school, name FROM teachers WHERE id = ?", (teacher_id,)
        ).fetchone()
        return None if row is None else Teacher(str(row[0]), str(row[1]), str(row[2]))

    def add_subject(self, name: str) -> str:
        name = check_name("subject", name)
        self._insert("subject", "INSERT INTO subjects (name) VALUES (?)", name)
        return name

    def subjects(self) -> list[str]:
        return [str(r[0]) for r in self._db.execute("SELECT name FROM subjects ORDER BY name")]

    # -- classrooms ----------------------------------------------------------------

    def add_classroom(self, classroom_id: str, school: str, name: str) -> Classroom:
        check_id("classroom", classroom_id)
        name = check_name("classroom", name)
        self._require_school(school)
        self._insert(
            "classroom",
            "INSERT INTO classrooms (id, school, name) VALUES (?, ?, ?)",
            classroom_id,
            school,
            name,
        )
        found = self.classroom(classroom_id)
        assert found is not None
        return found

    def classrooms(self, school: str | None = None) -> list[Classroom]:
        sql, args = f"SELECT {_CLASSROOM} FROM classrooms", tuple[str, ...]()
        if school is not None:
            sql, args = sql + " WHERE school = ?", (school,)
        rows = self._db.execute(sql + " ORDER BY school, id", args).fetchall()
        return [_classroom(r) for r in rows]

    def classroom(self, classroom_id: str) -> Classroom | None:
        row = self._db.execute(
            f"SELECT {_CLASSROOM} FROM classrooms WHERE id = ?", (classroom_id,)
        ).fetchone()
        return None if row is None else _classroom(row)

    def remove(self, kind: str, key: str) -> None:
        """Remove a school, classroom, teacher or subject that nothing refers to."""
        table, column = {
            "school": ("schools", "id"),
            "classroom": ("classrooms", "id"),
            "teacher": ("teachers", "id"),
            "subject": ("subjects", "name"),
        }[kind]
        try:
            cursor = self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (key,))
        except sqlite3.IntegrityError:
            raise DirectoryError(
                "in_use", f"{kind} {key} is still used (by classrooms, teachers or lessons)", 409
            ) from None
        if cursor.rowcount == 0:
            raise DirectoryError("not_found", f"there is no {kind} {key}", 404)

    # -- device tokens -------------------------------------------------------------

    def issue_token(self, classroom_id: str, now: float, *, rotate: bool = False) -> str:
        """A new device token for the classroom. Without `rotate`, a classroom that
        already has an active token is refused (a token cannot be shown again)."""
        with transaction(self._db):
            classroom = self._require_classroom(classroom_id)
            if classroom.token == "active" and not rotate:
                raise DirectoryError(
                    "token_exists",
                    f"classroom {classroom_id} already has a device token; rotate it to "
                    "get a new one (the old one stops working)",
                    409,
                )
            token = secrets.token_urlsafe(24)
            self._db.execute(
                "UPDATE classrooms SET token_hash = ?, token_issued = ?, token_revoked = 0 "
                "WHERE id = ?",
                (_hash(token), now, classroom_id),
            )
        return token

    def revoke_token(self, classroom_id: str) -> None:
        with transaction(self._db):
            classroom = self._require_classroom(classroom_id)
            if classroom.token == "none":
                raise DirectoryError(
                    "no_token", f"classroom {classroom_id} has no device token", 409
                )
            self._db.execute(
                "UPDATE classrooms SET token_revoked = 1 WHERE id = ?", (classroom_id,)
            )

    def verify_device(self, classroom_id: str, token: str) -> Classroom:
        """The classroom whose active device token this is; refused otherwise."""
        row = self._db.execute(
            "SELECT token_hash, token_revoked FROM classrooms WHERE id = ?", (classroom_id,)
        ).fetchone()
        if not token or row is None or row[0] is None:
            raise UserError(
                "device_invalid", "this classroom link is not valid", fatal=True, status=401
            )
        if not hmac.compare_digest(str(row[0]), _hash(token)):
            raise UserError(
                "device_invalid", "this classroom link is not valid", fatal=True, status=401
            )
        if row[1]:
            raise UserError(
                "device_revoked",
                "this classroom link was revoked; ask the administrator for the new one",
                fatal=True,
                status=403,
            )
        found = self.classroom(classroom_id)
        assert found is not None
        return found

    def seen(self, classroom_id: str, now: float) -> None:
        self._db.execute("UPDATE classrooms SET last_seen = ? WHERE id = ?", (now, classroom_id))

    # -- inside ------------------------------------------------------------------

    def _insert(self, kind: str, sql: str, *args: object) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise DirectoryError("exists", f"{kind} {args[0]} already exists", 409) from None

    def _require_school(self, school: str) -> None:
        if self.school(school) is None:
            raise DirectoryError("not_found", f"there is no school {school}", 404)

    def _require_classroom(self, classroom_id: str) -> Classroom:
        classroom = self.classroom(classroom_id)
        if classroom is None:
            raise DirectoryError("not_found", f"there is no classroom {classroom_id}", 404)
        return classroom


_CLASSROOM = "id, school, name, token_hash, token_revoked, token_issued, last_seen"


def _classroom(row: tuple[object, ...]) -> Classroom:
    classroom_id, school, name, token_hash, revoked, issued, seen = row
    state = "none" if token_hash is None else "revoked" if revoked else "active"
    return Classroom(
        id=str(classroom_id),
        school=str(school),
        name=str(name),
        token=state,
        token_issued=float(issued) if isinstance(issued, int | float) else None,
        last_seen=float(seen) if isinstance(seen, int | float) else None,
    )
