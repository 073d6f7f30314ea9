"""The connection every repository over DATA_DIR/zhuandi.db opens, and its
transactions. Calls are short and made from the event loop, as in server.store;
WAL lets the CLI read and write while the server runs."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DATABASE = "zhuandi.db"


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), with foreign
    keys on and `schema` (CREATE ... IF NOT EXISTS statements) applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL with NORMAL stays consistent after a crash and needs no fsync per commit,
    # which matters here: the attendance log writes from the event loop.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing: BEGIN IMMEDIATE (so that a check and the write it allows
    cannot interleave with another writer), COMMIT, or ROLLBACK on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
