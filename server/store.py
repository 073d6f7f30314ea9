"""The embedded database (SQLite under DATA_DIR): lessons known to this server."""

import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS lessons (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def ensure_lesson(self, lesson_id: str, title: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO lessons (id, title, created_at) VALUES (?, ?, ?)",
            (lesson_id, title, time.time()),
        )

    def lesson_title(self, lesson_id: str) -> str | None:
        row = self._db.execute("SELECT title FROM lessons WHERE id = ?", (lesson_id,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._db.close()
