"""`zhuandi library list|show|set|reprocess|export|import`: the library from a shell.

The commands work on DATA_DIR's catalog and files directly, so they also work
while the server runs (SQLite in WAL mode; a job's lock keeps the server's runner
and `reprocess` from writing the same renditions at once).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from config import Settings, load_settings
from recorder.process import EXIT_BUSY
from recorder.renditions import RESULT
from recorder.status import STATUS, read_status
from server.jobs import job_command, job_environment
from server.library import Library
from server.library_access import Viewer
from server.library_routes import open_library
from server.library_store import (
    VISIBILITIES,
    LibraryQuery,
    entry_from_json,
    entry_to_json,
    parse_tags,
)
from server.library_transfer import TransferError, export_lesson, import_lesson
from server.progress_bar import ProgressBar

POLL_SECONDS = 0.2
ADMIN = Viewer()  # the shell lists every lesson: whoever runs it owns DATA_DIR


def add_library_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    library = sub.add_parser("library", help="the recorded-lesson library")
    commands = library.add_subparsers(required=True, metavar="ACTION")

    listing = commands.add_parser("list", help="list or search lessons")
    _common(listing)
    listing.add_argument("-q", "--text", default="", help="any text field or tag, in part")
    for name in ("subject", "grade", "teacher", "school", "tag"):
        listing.add_argument(f"--{name}", default="")
    listing.add_argument("--from", dest="date_from", default="", metavar="YYYY-MM-DD")
    listing.add_argument("--to", dest="date_to", default="", metavar="YYYY-MM-DD")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(run=_list)

    show = commands.add_parser("show", help="one lesson: metadata, renditions, job")
    _common(show)
    show.add_argument("lesson")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=_show)

    edit = commands.add_parser("set", help="change a lesson's metadata")
    _common(edit)
    edit.add_argument("lesson")
    for name in ("title", "subject", "grade", "teacher", "school"):
        edit.add_argument(f"--{name}")
    edit.add_argument("--date", metavar="YYYY-MM-DD")
    edit.add_argument("--tags", help="comma-separated; replaces the lesson's tags")
    edit.add_argument("--visibility", choices=VISIBILITIES)
    edit.set_defaults(run=_set)

    reprocess = commands.add_parser(
        "reprocess", help="make renditions (default: of every archive that needs them)"
    )
    _common(reprocess)
    reprocess.add_argument("lessons", nargs="*", metavar="LESSON")
    reprocess.add_argument("--all", action="store_true", help="every archive")
    reprocess.add_argument("--force", action="store_true", help="even if current")
    reprocess.add_argument("--threads", type=int, help="encoder threads")
    reprocess.set_defaults(run=_reprocess)

    export = commands.add_parser("export", help="write a lesson's files and metadata")
    _common(export)
    export.add_argument("lesson")
    export.add_argument("dest", type=Path, help="directory; the lesson goes in DEST/LESSON")
    export.add_argument("--with-archive", action="store_true", help="include the raw recording too")
    export.set_defaults(run=_export)

    importing = commands.add_parser("import", help="add an exported lesson")
    _common(importing)
    importing.add_argument("source", type=Path, help="an exported lesson's directory")
    importing.add_argument("--as", dest="new_id", metavar="ID", help="under another id")
    importing.add_argument("--replace", action="store_true", help="replace a lesson here")
    importing.set_defaults(run=_import)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="settings file (TOML)")
    parser.add_argument("--data-dir", help="the server's data directory (default var)")


def _settings(args: argparse.Namespace) -> Settings:
    config_file = args.config or os.environ.get("ZHUANDI_CONFIG") or None
    server = {"data_dir": args.data_dir} if args.data_dir else {}
    return load_settings(config_file, os.environ, {"server": server})


def _open(args: argparse.Namespace) -> tuple[Settings, Library]:
    settings = _settings(args)
    library, _store = open_library(settings.data_path)
    for lesson_id in library.archived_lessons():
        library.ensure_entry(lesson_id)
    return settings, library


def _fail(message: str) -> int:
    print(f"zhuandi library: {message}", file=sys.stderr)
    return 1


# -- list, show, set --------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    _, library = _open(args)
    query = LibraryQuery(
        text=args.text,
        subject=args.subject,
        grade=args.grade,
        teacher=args.teacher,
        school=args.school,
        tag=args.tag,
        date_from=args.date_from,
        date_to=args.date_to,
    )
    entries = library.repository.search(query)  # every lesson, private ones too
    if args.json:
        print(json.dumps([library.describe(e, ADMIN) for e in entries], ensure_ascii=False))
        return 0
    print(f"{'LESSON':<20} {'DATE':<10} {'LENGTH':>7} {'STATE':<10} {'VISIBILITY':<10} TITLE")
    for entry in entries:
        status = library.job_status(entry.id)
        state = entry.state
        if state == "processing" and status is not None and status.state == "running":
            state = f"{status.percent:.0f}%"
        length = _minutes(entry.duration)
        facts = " · ".join(x for x in (entry.subject, entry.grade, entry.teacher) if x)
        title = f"{entry.title}  ({facts})" if facts else entry.title
        print(
            f"{entry.id:<20} {entry.date:<10} {length:>7} {state:<10} {entry.visibility:<10} "
            f"{title}"
        )
    print(f"{len(entries)} lessons")
    return 0


def _show(args: argparse.Namespace) -> int:
    _, library = _open(args)
    entry = library.repository.get(args.lesson)
    if entry is None:
        return _fail(f"there is no lesson {args.lesson}")
    data: dict[str, Any] = library.describe(entry, ADMIN)
    data["archive"] = str(library.archive_dir(entry.id))
    data["output"] = str(library.output_dir(entry.id))
    status = library.job_status(entry.id)
    if status is not None:
        data["job"] = {
            "state": status.state,
            "stage": status.stage,
            "percent": status.percent,
            "done": status.done,
            "error": status.error,
        }
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=1))
        return 0
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        print(f"{key:>12}: {value}")
    return 0


def _set(args: argparse.Namespace) -> int:
    _, library = _open(args)
    entry = library.repository.get(args.lesson)
    if entry is None:
        return _fail(f"there is no lesson {args.lesson}")
    changes: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("title", "subject", "grade", "teacher", "school", "date", "visibility")
        if getattr(args, name) is not None
    }
    if args.tags is not None:
        changes["tags"] = list(parse_tags(args.tags))
    try:
        merged = entry_from_json({**entry_to_json(entry), **changes})
    except ValueError as exc:
        return _fail(str(exc))
    library.repository.put(entry.changed(**{name: getattr(merged, name) for name in changes}))
    print(f"{args.lesson}: updated {', '.join(sorted(changes)) or 'nothing'}")
    return 0


# -- reprocess ----------------------------------------------------------------------


def _reprocess(args: argparse.Namespace) -> int:
    settings, library = _open(args)
    lessons: list[str] = args.lessons or library.archived_lessons()
    failed = 0
    for lesson_id in lessons:
        archive = library.archive_dir(lesson_id)
        if not archive.is_dir():
            failed += 1
            print(f"{lesson_id}: no archive in {library.recordings}", file=sys.stderr)
            continue
        if not (args.lessons or args.all or args.force) and not library.needs_processing(lesson_id):
            continue
        if args.force:
            for name in (RESULT, STATUS):
                (library.output_dir(lesson_id) / name).unlink(missing_ok=True)
        library.ensure_entry(lesson_id)
        threads = args.threads or settings.library.job_threads
        if not _run_job(library, lesson_id, threads, settings.library.job_nice):
            failed += 1
    return 1 if failed else 0


def _run_job(library: Library, lesson_id: str, threads: int, nice: int) -> bool:
    output = library.output_dir(lesson_id)
    command = job_command(library.archive_dir(lesson_id), output, threads=threads, nice=nice)
    bar = ProgressBar(lesson_id)
    started = time.monotonic()
    library.set_state(lesson_id, "processing")
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=job_environment(),
        text=True,
    )
    try:
        while process.poll() is None:
            status = read_status(output)
            if status is not None and status.pid == process.pid and status.state == "running":
                bar.show(status.percent, status.stage)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        process.terminate()  # the job resumes from its last stage next time
        process.wait()
        raise
    stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode == 0:
        library.set_state(lesson_id, "ready")
        if stdout.strip() == "current":
            bar.end("current: nothing to do")
        else:
            bar.show(100.0, "")
            bar.end(f"done in {seconds:.1f} s")
        return True
    if process.returncode == EXIT_BUSY:
        bar.end("busy: another job (the server's?) is processing it; try again later")
        library.set_state(lesson_id, "pending")
        return False
    status = read_status(output)
    error = status.error if status is not None and status.error else stderr.strip()[-300:]
    library.set_state(lesson_id, "failed", error)
    bar.end(f"failed: {error}")
    return False


# -- export, import -------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    _, library = _open(args)
    try:
        target = export_lesson(library, args.lesson, args.dest, args.with_archive)
    except TransferError as exc:
        return _fail(str(exc))
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"{args.lesson}: exported to {target} ({size / 1e6:.1f} MB)")
    return 0


def _import(args: argparse.Namespace) -> int:
    _, library = _open(args)
    try:
        imported = import_lesson(library, args.source, new_id=args.new_id, replace=args.replace)
    except TransferError as exc:
        return _fail(str(exc))
    extra = " with its archive" if imported.archive else ""
    print(f"{imported.entry.id}: imported {imported.files} files{extra}")
    return 0


def _minutes(seconds: float | None) -> str:
    if not seconds:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"
