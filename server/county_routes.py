"""Putting the county's side into the application: the directory and timetable,
the scheduler, the hooks on each lesson (scheduling, attendance, starting
layers), the kiosk pages, the line check, the administration pages and the
statistics."""

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.admin_pages import setup_admin_pages
from server.attendance import LessonWatcher
from server.county import County, open_county
from server.keys import CLOCK, COUNTY, LESSONS, LIBRARY, SCHEDULER, SETTINGS, WORKER
from server.lesson import Lesson
from server.library import Library
from server.linecheck_routes import setup_linecheck
from server.peer import Peer
from server.room import classroom_of_seat, setup_room
from server.scheduler import Scheduler
from server.stats_pages import setup_stats
from server.timetable_pages import setup_timetable_pages

logger = logging.getLogger(__name__)


def setup_county(app: web.Application) -> None:
    settings = app[SETTINGS]
    clock = app[CLOCK]
    county = open_county(settings.data_path, settings.timetable.timezone)
    app[COUNTY] = county
    lessons = app[LESSONS]
    scheduler = Scheduler(
        county,
        lessons,
        clock,
        open_early=settings.timetable.open_early * 60,
        record=settings.recorder.enabled,
    )
    app[SCHEDULER] = scheduler

    def classroom_of(lesson: str, seat: str) -> str | None:
        if seat == "teacher":
            occurrence = county.timetable.get(lesson)
            return occurrence.host if occurrence is not None else None
        return classroom_of_seat(seat)

    watcher = LessonWatcher(county.attendance, clock, classroom_of)

    def starting_layer(peer: Peer) -> int | None:
        classroom = classroom_of_seat(peer.seat)
        if classroom is None or peer.role != "classroom":
            return 0
        return county.checks.starting_layer_of(classroom, clock.now())

    def opened(lesson: Lesson) -> None:
        scheduler.lesson_opened(lesson)
        watcher.watch(lesson)
        lesson.starting_layer = starting_layer

    lessons.opened.append(opened)
    if LIBRARY in app:
        library = app[LIBRARY]
        lessons.recording_finished.append(
            lambda lesson, _archive: describe_in_library(county, library, lesson)
        )
        app.on_response_prepare.append(_count_views)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        scheduler.start(close_open=app.get(WORKER) is None)
        yield
        await scheduler.close()
        watcher.close_all()  # before the lessons close: the server stops, not the lessons

    async def close_database(app: web.Application) -> None:
        county.close()  # after every cleanup context: closing lessons still writes

    app.cleanup_ctx.append(lifecycle)
    app.on_cleanup.append(close_database)
    setup_room(app)
    setup_linecheck(app)
    setup_admin_pages(app)
    setup_timetable_pages(app)
    setup_stats(app)


def describe_in_library(county: County, library: Library, lesson: str) -> None:
    """A scheduled lesson's recording enters the library with the timetable's
    title, subject, grade, teacher, school and day."""
    occurrence = county.timetable.get(lesson)
    if occurrence is None:
        return
    teacher = county.directory.teacher(occurrence.teacher)
    host = county.directory.classroom(occurrence.host)
    school = county.directory.school(host.school) if host is not None else None
    entry = library.ensure_entry(lesson)
    library.repository.put(
        entry.changed(
            title=occurrence.title,
            subject=occurrence.subject,
            grade=occurrence.grade,
            teacher=teacher.name if teacher else occurrence.teacher,
            school=school.name if school else "",
            date=occurrence.date,
        )
    )


async def _count_views(request: web.Request, response: web.StreamResponse) -> None:
    """A library lesson's replay page shown counts as one view."""
    route = request.match_info.route.resource
    if (
        request.method == "GET"
        and response.status == 200
        and route is not None
        and route.canonical == "/library/{lesson}"
    ):
        request.app[COUNTY].views.add(request.match_info["lesson"], request.app[CLOCK].now())
