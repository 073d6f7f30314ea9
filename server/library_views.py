"""Views of library lessons (the replay page opened), counted for the county's
statistics."""

from pathlib import Path

from server.database import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS library_views (
    lesson TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS library_views_at ON library_views (at);
"""


class LibraryViews:
    def __init__(self, path: Path) -> None:
        self._db = connect(path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, lesson: str, at: float) -> None:
        self._db.execute("INSERT INTO library_views (lesson, at) VALUES (?, ?)", (lesson, at))

    def between(self, start: float, end: float) -> list[tuple[str, float]]:
        """(lesson, time) of every view in [start, end)."""
        rows = self._db.execute(
            "SELECT lesson, at FROM library_views WHERE at >= ? AND at < ? ORDER BY at",
            (start, end),
        )
        return [(str(r[0]), float(r[1])) for r in rows]
