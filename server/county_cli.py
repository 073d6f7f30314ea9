"""`zhuandi admin|directory|device|schedule`: setting a county up from a shell.

    zhuandi admin add (--county | --school ID) LOGIN     the password from a prompt or stdin
    zhuandi admin list | remove LOGIN | password LOGIN
    zhuandi directory list
    zhuandi directory add school ID NAME | classroom ID NAME --school S
                      | teacher ID NAME --school S | subject NAME
    zhuandi directory remove school|classroom|teacher|subject ID
    zhuandi device token|rotate|revoke CLASSROOM          token and rotate print the kiosk URL
    zhuandi schedule add --title … --subject … --teacher … --host … --receivers a,b
                         --date D --start HH:MM --end HH:MM [--period N] [--weekly-until D]
    zhuandi schedule list [--from D] [--to D] [--classroom C] [--school S] [--json]
    zhuandi schedule import FILE.csv
    zhuandi schedule remove LESSON [--series]

They work on DATA_DIR's database directly, also while the server runs.
"""

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as daytime
from pathlib import Path

from config import Settings, load_settings
from server.county import County, open_county
from server.errors import UserError
from server.timetable import LessonPlan, TimetableError
from server.timetable_csv import parse_date, parse_time, read_plans

Sub = argparse._SubParsersAction
Command = Callable[[argparse.Namespace, Settings, County], int]


def add_county_commands(sub: "Sub[argparse.ArgumentParser]") -> None:
    _admin_commands(sub)
    _directory_commands(sub)
    _device_commands(sub)
    _schedule_commands(sub)


def _common(parser: argparse.ArgumentParser, run: Command) -> None:
    parser.add_argument("--config", metavar="FILE", help="settings file (TOML)")
    parser.add_argument("--data-dir", help="the server's data directory (default var)")
    parser.set_defaults(run=_guarded(run))


def _settings(args: argparse.Namespace) -> Settings:
    config_file = args.config or os.environ.get("ZHUANDI_CONFIG") or None
    server = {"data_dir": args.data_dir} if args.data_dir else {}
    return load_settings(config_file, os.environ, {"server": server})


def _guarded(run: Command) -> Callable[[argparse.Namespace], int]:
    """Open the county's database for the command; refusals become one line on stderr."""

    def command(args: argparse.Namespace) -> int:
        settings = _settings(args)
        county = open_county(settings.data_path, settings.timetable.timezone)
        try:
            return run(args, settings, county)
        except UserError as exc:
            return _fail(args, exc.message)
        except TimetableError as exc:
            for problem in exc.problems:
                print(f"zhuandi {args.command}: {problem.describe('en')}", file=sys.stderr)
            print(f"zhuandi {args.command}: nothing was scheduled", file=sys.stderr)
            return 1
        finally:
            county.close()

    return command


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"zhuandi {args.command}: {message}", file=sys.stderr)
    return 1


# -- admin ------------------------------------------------------------------------


def _admin_commands(sub: "Sub[argparse.ArgumentParser]") -> None:
    admin = sub.add_parser("admin", help="administrator accounts")
    admin.set_defaults(command="admin")
    actions = admin.add_subparsers(required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add an administrator (the password is asked for)")
    role = add.add_mutually_exclusive_group(required=True)
    role.add_argument("--county", action="store_true", help="sees and manages everything")
    role.add_argument("--school", metavar="ID", help="sees and manages one school")
    add.add_argument("login")
    _common(add, _admin_add)
    _common(actions.add_parser("list", help="list administrators"), _admin_list)
    remove = actions.add_parser("remove", help="remove an administrator")
    remove.add_argument("login")
    _common(remove, _admin_remove)
    password = actions.add_parser("password", help="set a new password (ends their sessions)")
    password.add_argument("login")
    _common(password, _admin_password)


def read_password(prompt: str = "Password: ") -> str:
    """From the terminal (asked twice), or the first line of stdin (scripts)."""
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != first:
            raise UserError("bad_password", "the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _admin_add(args: argparse.Namespace, settings: Settings, county: County) -> int:
    role = "county" if args.county else "school"
    if args.school and county.directory.school(args.school) is None:
        return _fail(
            args,
            f"there is no school {args.school}; add it first with "
            f"`zhuandi directory add school {args.school} NAME`",
        )
    admin = county.admins.add(args.login, role, args.school, read_password(), time.time())
    where = f" of {admin.school}" if admin.school else ""
    print(
        f"added {admin.role} administrator {admin.login}{where}; log in at "
        f"{settings.base_url}/admin"
    )
    return 0


def _admin_list(args: argparse.Namespace, settings: Settings, county: County) -> int:
    for admin in county.admins.all():
        print(f"{admin.login}\t{admin.role}\t{admin.school or ''}")
    return 0


def _admin_remove(args: argparse.Namespace, settings: Settings, county: County) -> int:
    if not county.admins.remove(args.login):
        return _fail(args, f"there is no administrator {args.login}")
    print(f"removed administrator {args.login}")
    return 0


def _admin_password(args: argparse.Namespace, settings: Settings, county: County) -> int:
    if county.admins.get(args.login) is None:
        return _fail(args, f"there is no administrator {args.login}")
    county.admins.set_password(args.login, read_password("New password: "))
    print(f"the password of {args.login} is changed; their sessions are closed")
    return 0


# -- directory --------------------------------------------------------------------


def _directory_commands(sub: "Sub[argparse.ArgumentParser]") -> None:
    directory = sub.add_parser("directory", help="schools, classrooms, teachers, subjects")
    directory.set_defaults(command="directory")
    actions = directory.add_subparsers(required=True, metavar="ACTION")
    _common(actions.add_parser("list", help="everything, by school"), _directory_list)
    add = actions.add_parser("add", help="add a school, classroom, teacher or subject")
    add.add_argument("kind", choices=["school", "classroom", "teacher", "subject"])
    add.add_argument("names", nargs="+", metavar="ID NAME", help="ID and NAME (a subject: NAME)")
    add.add_argument("--school", help="the school of a classroom or teacher")
    _common(add, _directory_add)
    remove = actions.add_parser("remove", help="remove something nothing refers to")
    remove.add_argument("kind", choices=["school", "classroom", "teacher", "subject"])
    remove.add_argument("id")
    _common(remove, _directory_remove)


def _directory_list(args: argparse.Namespace, settings: Settings, county: County) -> int:
    directory = county.directory
    for school in directory.schools():
        print(f"school {school.id}\t{school.name}")
        for c in directory.classrooms(school.id):
            print(f"  classroom {c.id}\t{c.name}\tdevice link: {c.token}")
        for t in directory.teachers(school.id):
            print(f"  teacher {t.id}\t{t.name}")
    print("subjects: " + ", ".join(directory.subjects()))
    return 0


def _directory_add(args: argparse.Namespace, settings: Settings, county: County) -> int:
    directory = county.directory
    wanted = 1 if args.kind == "subject" else 2
    if len(args.names) != wanted:
        usage = "NAME" if wanted == 1 else "ID NAME"
        return _fail(args, f"give {usage} for a {args.kind}")
    if args.kind in ("classroom", "teacher") and not args.school:
        return _fail(args, f"a {args.kind} needs --school ID")
    if args.kind == "school":
        directory.add_school(*args.names)
    elif args.kind == "classroom":
        directory.add_classroom(args.names[0], args.school, args.names[1])
    elif args.kind == "teacher":
        directory.add_teacher(args.names[0], args.school, args.names[1])
    else:
        directory.add_subject(args.names[0])
    print(f"added {args.kind} {' '.join(args.names)}")
    return 0


def _directory_remove(args: argparse.Namespace, settings: Settings, county: County) -> int:
    county.directory.remove(args.kind, args.id)
    print(f"removed {args.kind} {args.id}")
    return 0


# -- device tokens ------------------------------------------------------------------


def _device_commands(sub: "Sub[argparse.ArgumentParser]") -> None:
    device = sub.add_parser("device", help="classroom PCs' long-lived links")
    device.set_defaults(command="device")
    actions = device.add_subparsers(required=True, metavar="ACTION")
    for name, text in (
        ("token", "make the classroom's link (if it has none); prints the URL"),
        ("rotate", "a new link for the classroom; the old one stops working"),
        ("revoke", "the classroom's link stops working"),
    ):
        parser = actions.add_parser(name, help=text)
        parser.add_argument("classroom")
        parser.set_defaults(action=name)
        _common(parser, _device)


def _device(args: argparse.Namespace, settings: Settings, county: County) -> int:
    if args.action == "revoke":
        county.directory.revoke_token(args.classroom)
        print(f"the device link of classroom {args.classroom} is revoked")
        return 0
    token = county.directory.issue_token(
        args.classroom, time.time(), rotate=args.action == "rotate"
    )
    print(f"{settings.base_url}/room/{args.classroom}?device={token}")
    return 0


# -- the timetable ------------------------------------------------------------------


def _schedule_commands(sub: "Sub[argparse.ArgumentParser]") -> None:
    schedule = sub.add_parser("schedule", help="the timetable")
    schedule.set_defaults(command="schedule")
    actions = schedule.add_subparsers(required=True, metavar="ACTION")
    add = actions.add_parser("add", help="schedule a lesson (weekly with --weekly-until)")
    for name in ("title", "subject", "teacher", "host", "date", "start", "end"):
        add.add_argument(f"--{name}", required=True)
    add.add_argument("--receivers", required=True, help="classroom ids, comma-separated")
    add.add_argument("--grade", default="")
    add.add_argument("--period", type=int)
    add.add_argument("--weekly-until", metavar="YYYY-MM-DD")
    _common(add, _schedule_add)
    listing = actions.add_parser("list", help="lessons in a date range (default: this week)")
    listing.add_argument("--from", dest="first", metavar="YYYY-MM-DD")
    listing.add_argument("--to", dest="last", metavar="YYYY-MM-DD")
    listing.add_argument("--classroom")
    listing.add_argument("--school")
    listing.add_argument("--json", action="store_true")
    _common(listing, _schedule_list)
    importing = actions.add_parser("import", help="import a CSV timetable, all or nothing")
    importing.add_argument("file", type=Path)
    _common(importing, _schedule_import)
    remove = actions.add_parser("remove", help="remove a lesson")
    remove.add_argument("lesson")
    remove.add_argument("--series", action="store_true", help="and every week of its repeat")
    _common(remove, _schedule_remove)


def _schedule_add(args: argparse.Namespace, settings: Settings, county: County) -> int:
    day, start, end = parse_date(args.date), parse_time(args.start), parse_time(args.end)
    until = parse_date(args.weekly_until) if args.weekly_until else None
    for name, value, ok in (
        ("--date", args.date, day is not None),
        ("--start", args.start, start is not None),
        ("--end", args.end, end is not None),
        ("--weekly-until", args.weekly_until, until is not None or not args.weekly_until),
    ):
        if not ok:
            return _fail(args, f"{name} {value!r} cannot be read (dates YYYY-MM-DD, times HH:MM)")
    assert day is not None and start is not None and end is not None
    plan = LessonPlan(
        title=args.title,
        subject=args.subject,
        grade=args.grade,
        teacher=args.teacher,
        host=args.host,
        receivers=tuple(r.strip() for r in args.receivers.split(",") if r.strip()),
        day=day,
        start=start,
        end=end,
        period=args.period,
        until=until,
    )
    added = county.timetable.add([plan], time.time())
    for occurrence in added:
        print(
            f"{occurrence.lesson}\t{occurrence.date} {occurrence.start_time}-{occurrence.end_time}"
        )
    print(f"scheduled {len(added)} lesson{'s' if len(added) != 1 else ''}")
    return 0


def _schedule_list(args: argparse.Namespace, settings: Settings, county: County) -> int:
    today = datetime.now(county.zone).date()
    first = parse_date(args.first) if args.first else today - timedelta(days=today.weekday())
    last = parse_date(args.last) if args.last else first and first + timedelta(days=6)
    if first is None or last is None:
        return _fail(args, "dates are YYYY-MM-DD")
    lessons = county.timetable.listing(
        _midnight(first, county),
        _midnight(last + timedelta(days=1), county),
        school=args.school,
        classroom=args.classroom,
    )
    if args.json:
        print(json.dumps([o.__dict__ for o in lessons], ensure_ascii=False, indent=1))
        return 0
    for o in lessons:
        period = f"#{o.period} " if o.period else ""
        print(
            f"{o.lesson}\t{o.date} {period}{o.start_time}-{o.end_time}\t{o.subject} {o.grade}\t"
            f"{o.title}\t{o.teacher}@{o.host} -> {','.join(o.receivers)}"
        )
    print(f"{len(lessons)} lesson{'s' if len(lessons) != 1 else ''} from {first} to {last}")
    return 0


def _midnight(day: date, county: County) -> float:
    return datetime.combine(day, daytime(0), county.zone).timestamp()


def _schedule_import(args: argparse.Namespace, settings: Settings, county: County) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        return _fail(args, f"cannot read {args.file}: {exc.strerror}")
    plans, problems = read_plans(data)
    if problems:
        for problem in problems:
            print(f"zhuandi schedule: {args.file}: {problem.describe('en')}", file=sys.stderr)
        print(f"zhuandi schedule: nothing was imported ({len(problems)} problems)", file=sys.stderr)
        return 1
    try:
        added = county.timetable.add(plans, time.time())
    except TimetableError as exc:
        for problem in exc.problems:
            print(f"zhuandi schedule: {args.file}: {problem.describe('en')}", file=sys.stderr)
        count = len(exc.problems)
        print(f"zhuandi schedule: nothing was imported ({count} problems)", file=sys.stderr)
        return 1
    print(f"imported {len(added)} lessons from {len(plans)} lines of {args.file}")
    return 0


def _schedule_remove(args: argparse.Namespace, settings: Settings, county: County) -> int:
    removed = county.timetable.remove(args.lesson, series=args.series)
    if not removed:
        return _fail(args, f"there is no lesson {args.lesson}")
    print(f"removed {removed} lesson{'s' if removed != 1 else ''}")
    return 0
