"""The library catalog: one entry per recorded lesson, behind a small repository
interface. SQLite (DATA_DIR/zhuandi.db) implements it today; the interface is what
a PostgreSQL catalog will implement when a county outgrows one server.
"""

import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from server.tokens import LESSON_ID

VISIBILITIES = ("public", "district", "private")
DEFAULT_VISIBILITY = "district"
STATES = ("pending", "processing", "ready", "failed")
TEXT_FIELDS = ("title", "subject", "grade", "teacher", "school")


@dataclass(frozen=True)
class LibraryEntry:
    id: str
    title: str
    subject: str = ""
    grade: str = ""
    teacher: str = ""
    school: str = ""
    date: str = ""  # the lesson's day, YYYY-MM-DD
    duration: float | None = None  # seconds, once the renditions exist
    tags: tuple[str, ...] = ()
    visibility: str = DEFAULT_VISIBILITY
    state: str = "pending"  # of its renditions: pending, processing, ready, failed
    error: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def changed(self, **changes: object) -> "LibraryEntry":
        return replace(self, **changes, updated=time.time())  # type: ignore[arg-type]


@dataclass(frozen=True)
class LibraryQuery:
    """Every given field must match; empty ones do not filter. `text` matches any of
    the text fields or a tag, in part; the others match whole values."""

    text: str = ""
    subject: str = ""
    grade: str = ""
    teacher: str = ""
    school: str = ""
    tag: str = ""
    date_from: str = ""  # inclusive, YYYY-MM-DD
    date_to: str = ""  # inclusive


class LibraryRepository(Protocol):
    def get(self, lesson_id: str) -> LibraryEntry | None: ...

    def put(self, entry: LibraryEntry) -> None:
        """Insert the entry, or replace the one with its id."""

    def delete(self, lesson_id: str) -> bool: ...

    def search(self, query: LibraryQuery) -> list[LibraryEntry]:
        """Matching entries, newest lesson first. Visibility is not applied here:
        `server.library_access.can_view` decides, in one place."""

    def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS library (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    grade TEXT NOT NULL DEFAULT '',
    teacher TEXT NOT NULL DEFAULT '',
    school TEXT NOT NULL DEFAULT '',
    date TEXT NOT NULL DEFAULT '',
    duration REAL,
    visibility TEXT NOT NULL DEFAULT 'district'
        CHECK (visibility IN ('public', 'district', 'private')),
    state TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS library_date ON library (date);
CREATE TABLE IF NOT EXISTS library_tags (
    lesson TEXT NOT NULL REFERENCES library (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (lesson, tag)
);
CREATE INDEX IF NOT EXISTS library_tags_tag ON library_tags (tag);
"""
_COLUMNS = (
    "id, title, subject, grade, teacher, school, date, duration, visibility, state, error, "
    "created, updated"
)


class SqliteLibrary:
    """The catalog in SQLite. Calls are short and made from the event loop, like
    server.store; WAL lets the CLI read and write while the server runs."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def get(self, lesson_id: str) -> LibraryEntry | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM library WHERE id = ?", (lesson_id,))
        found = row.fetchone()
        return None if found is None else self._entry(found)

    def put(self, entry: LibraryEntry) -> None:
        if entry.visibility not in VISIBILITIES:
            raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}")
        with self._transaction():
            self._db.execute(
                f"INSERT OR REPLACE INTO library ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    entry.title,
                    entry.subject,
                    entry.grade,
                    entry.teacher,
                    entry.school,
                    entry.date,
                    entry.duration,
                    entry.visibility,
                    entry.state,
                    entry.error,
                    entry.created,
                    entry.updated,
                ),
            )
            self._db.execute("DELETE FROM library_tags WHERE lesson = ?", (entry.id,))
            self._db.executemany(
                "INSERT OR IGNORE INTO library_tags (lesson, tag) VALUES (?, ?)",
                [(entry.id, tag) for tag in entry.tags],
            )

    def delete(self, lesson_id: str) -> bool:
        with self._transaction():
            self._db.execute("DELETE FROM library_tags WHERE lesson = ?", (lesson_id,))
            cursor = self._db.execute("DELETE FROM library WHERE id = ?", (lesson_id,))
        return cursor.rowcount > 0

    def search(self, query: LibraryQuery) -> list[LibraryEntry]:
        where: list[str] = []
        args: list[object] = []
        for name in ("subject", "grade", "teacher", "school"):
            value = getattr(query, name).strip()
            if value:
                where.append(f"{name} = ? COLLATE NOCASE")
                args.append(value)
        if query.tag.strip():
            where.append("id IN (SELECT lesson FROM library_tags WHERE tag = ? COLLATE NOCASE)")
            args.append(query.tag.strip())
        if query.date_from:
            where.append("date >= ?")
            args.append(query.date_from)
        if query.date_to:
            where.append("date <= ?")
            args.append(query.date_to)
        if query.text.strip():
            pattern = "%" + _escape_like(query.text.strip()) + "%"
            fields = [f"{name} LIKE ? ESCAPE '\\'" for name in TEXT_FIELDS]
            fields.append("id IN (SELECT lesson FROM library_tags WHERE tag LIKE ? ESCAPE '\\')")
            where.append("(" + " OR ".join(fields) + ")")
            args += [pattern] * len(fields)
        sql = f"SELECT {_COLUMNS} FROM library"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY date DESC, created DESC, id"
        return [self._entry(row) for row in self._db.execute(sql, args).fetchall()]

    def close(self) -> None:
        self._db.close()

    def _entry(self, row: tuple[object, ...]) -> LibraryEntry:
        tags = self._db.execute(
            "SELECT tag FROM library_tags WHERE lesson = ? ORDER BY tag", (row[0],)
        ).fetchall()
        (lesson_id, title, subject, grade, teacher, school, date, duration) = row[:8]
        visibility, state, error, created, updated = row[8:]
        return LibraryEntry(
            id=str(lesson_id),
            title=str(title),
            subject=str(subject),
            grade=str(grade),
            teacher=str(teacher),
            school=str(school),
            date=str(date),
            duration=None if duration is None else float(str(duration)),
            tags=tuple(str(t[0]) for t in tags),
            visibility=str(visibility),
            state=str(state),
            error=None if error is None else str(error),
            created=float(str(created)),
            updated=float(str(updated)),
        )

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._db.execute("COMMIT" if error is None else "ROLLBACK")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def entry_to_json(entry: LibraryEntry) -> dict[str, object]:
    """The catalog fields, as the API and the export file carry them."""
    return {
        "id": entry.id,
        "title": entry.title,
        "subject": entry.subject,
        "grade": entry.grade,
        "teacher": entry.teacher,
        "school": entry.school,
        "date": entry.date,
        "duration": entry.duration,
        "tags": list(entry.tags),
        "visibility": entry.visibility,
    }


def entry_from_json(data: dict[str, object]) -> LibraryEntry:
    """An entry from exported metadata; ValueError names what is wrong."""
    lesson_id = data.get("id")
    if not isinstance(lesson_id, str) or not LESSON_ID.match(lesson_id):
        raise ValueError(f"bad lesson id {lesson_id!r}")
    values: dict[str, str] = {}
    for name in ("title", "subject", "grade", "teacher", "school", "date"):
        value = data.get(name, "")
        if not isinstance(value, str) or len(value) > 200:
            raise ValueError(f"{name} must be a string of at most 200 characters")
        values[name] = value
    if values["date"] and not _is_date(values["date"]):
        raise ValueError(f"date must be YYYY-MM-DD, not {values['date']!r}")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ValueError("tags must be a list of strings")
    visibility = data.get("visibility", DEFAULT_VISIBILITY)
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}")
    duration = data.get("duration")
    if duration is not None and not isinstance(duration, int | float):
        raise ValueError("duration must be a number of seconds")
    return LibraryEntry(
        id=lesson_id,
        title=values["title"] or lesson_id,
        subject=values["subject"],
        grade=values["grade"],
        teacher=values["teacher"],
        school=values["school"],
        date=values["date"],
        duration=None if duration is None else float(duration),
        tags=tuple(dict.fromkeys(str(t) for t in tags)),
        visibility=str(visibility),
    )


def _is_date(text: str) -> bool:
    try:
        time.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def parse_tags(text: str) -> tuple[str, ...]:
    """Tags from "a, b,c" (also the Chinese comma)."""
    parts = text.replace("，", ",").split(",")
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
