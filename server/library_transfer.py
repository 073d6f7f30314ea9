"""Moving a lesson between schools' servers: its files plus one JSON metadata file.

    DEST/<lesson>/lesson.json        catalog fields, the renditions' facts, and every
                                     file's size and SHA-256
    DEST/<lesson>/lesson.mp4, hls/…  the renditions, as served
    DEST/<lesson>/archive/…          the live archive, with --with-archive (so that
                                     the receiving server can make renditions again)

An import trusts nothing in the directory it is given: every listed path must be a
plain relative path, every file must match its size and digest, and nothing else
is copied. The lesson appears in the library only once all of it is in place.
"""

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.archive import MANIFEST
from recorder.renditions import RESULT, read_result
from recorder.status import LOCK, STATUS
from server.library import Library
from server.library_store import LibraryEntry, entry_from_json, entry_to_json

METADATA = "lesson.json"
FORMAT = "zhuandi-lesson"
VERSION = 1
ARCHIVE = "archive"
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_NOT_EXPORTED = {STATUS, LOCK}


class TransferError(Exception):
    """An export or import that cannot be done; the message says why."""


@dataclass(frozen=True)
class Imported:
    entry: LibraryEntry
    files: int
    archive: bool


def export_lesson(library: Library, lesson_id: str, dest: Path, with_archive: bool) -> Path:
    """Write the lesson into `dest/<lesson>/`; return that directory."""
    entry = library.repository.get(lesson_id)
    if entry is None:
        raise TransferError(f"there is no lesson {lesson_id} in the library")
    output = library.output_dir(lesson_id)
    if read_result(output) is None:
        raise TransferError(
            f"lesson {lesson_id} has no renditions yet: run `zhuandi library reprocess {lesson_id}`"
        )
    target = dest / lesson_id
    if target.exists():
        raise TransferError(f"{target} already exists")
    partial = dest / f".{lesson_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        files = _copy_tree(output, partial, "")
        if with_archive:
            archive = library.archive_dir(lesson_id)
            if not (archive / MANIFEST).is_file():
                raise TransferError(f"lesson {lesson_id} has no archive on this server")
            files += _copy_tree(archive, partial / ARCHIVE, ARCHIVE + "/")
        metadata = {
            "format": FORMAT,
            "version": VERSION,
            "lesson": entry_to_json(entry),
            "renditions": read_result(output),
            "files": files,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (partial / METADATA).write_text(
            json.dumps(metadata, indent=1, ensure_ascii=False), encoding="utf-8"
        )
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def import_lesson(
    library: Library, source: Path, *, new_id: str | None = None, replace: bool = False
) -> Imported:
    """Check and copy an exported lesson into this server's library."""
    metadata = _read_metadata(source)
    try:
        entry = entry_from_json({**metadata["lesson"], **({"id": new_id} if new_id else {})})
    except (ValueError, TypeError) as exc:
        raise TransferError(f"{source / METADATA}: {exc}") from None
    lesson_id = entry.id
    existing = library.repository.get(lesson_id)
    output, archive = library.output_dir(lesson_id), library.archive_dir(lesson_id)
    if not replace and (existing is not None or output.exists() or archive.exists()):
        raise TransferError(
            f"lesson {lesson_id} already exists here: use --replace, or --as ANOTHER_ID"
        )
    files = _checked_files(source, metadata.get("files"))
    if not any(path == RESULT for path, _ in files):
        raise TransferError(f"{source}: the renditions ({RESULT}) are missing")
    has_archive = any(path.startswith(ARCHIVE + "/") for path, _ in files)
    staging = library.root / f".{lesson_id}.import"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for path, _ in files:
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / path, target)
        if has_archive:
            _swap(staging / ARCHIVE, archive)
        _swap(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = read_result(output) or {}
    duration = result.get("duration")
    entry = entry.changed(
        state="ready",
        error=None,
        duration=float(duration) if isinstance(duration, int | float) else entry.duration,
        created=existing.created if existing is not None else time.time(),
    )
    library.repository.put(entry)
    return Imported(entry, len(files), has_archive)


def _read_metadata(source: Path) -> dict[str, Any]:
    path = source / METADATA
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TransferError(f"{source} is not an exported lesson (no {METADATA})") from None
    except (OSError, ValueError) as exc:
        raise TransferError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TransferError(f"{path} is not a Zhuandi lesson export")
    if data.get("version") != VERSION:
        raise TransferError(f"{path}: export version {data.get('version')} is not supported")
    if not isinstance(data.get("lesson"), dict):
        raise TransferError(f"{path}: no lesson metadata")
    return data


def _checked_files(source: Path, listed: object) -> list[tuple[str, int]]:
    """The listed files, each a plain relative path whose size and SHA-256 match."""
    if not isinstance(listed, list) or not listed:
        raise TransferError(f"{source / METADATA}: no file list")
    root = source.resolve()
    files: list[tuple[str, int]] = []
    for item in listed:
        if not isinstance(item, dict):
            raise TransferError("the file list is malformed")
        path, size, digest = item.get("path"), item.get("size"), item.get("sha256")
        if not isinstance(path, str) or not all(_PART.match(p) for p in path.split("/")):
            raise TransferError(f"refused file name {path!r}")
        if path == METADATA:
            continue
        full = source / path
        if full.is_symlink() or not full.resolve().is_relative_to(root) or not full.is_file():
            raise TransferError(f"{path}: missing, or not a plain file")
        if full.stat().st_size != size or _sha256(full) != digest:
            raise TransferError(f"{path}: damaged (size or SHA-256 does not match)")
        files.append((path, int(size)))
    return files


def _copy_tree(source: Path, target: Path, prefix: str) -> list[dict[str, Any]]:
    files = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        if path.is_symlink() or not path.is_file() or path.name in _NOT_EXPORTED:
            continue
        if any(part.startswith(".") for part in relative.split("/")):
            continue  # half-written leftovers of a job
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        files.append(
            {"path": prefix + relative, "size": path.stat().st_size, "sha256": _sha256(path)}
        )
    return files


def _swap(new: Path, final: Path) -> None:
    """Put `new` at `final`, replacing what was there."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
