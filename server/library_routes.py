"""Putting the library into the application: catalog, job runner, routes, and the
hook that queues a lesson's renditions when it closes."""

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from server.jobs import RenditionJobs
from server.keys import JOBS, LESSONS, LIBRARY, SETTINGS
from server.library import Library
from server.library_api import setup_library_api
from server.library_files import lesson_file
from server.library_pages import setup_library_pages
from server.library_store import SqliteLibrary
from server.store import Store

DATABASE = "zhuandi.db"


def open_library(data_dir: Path) -> tuple[Library, Store]:
    """The library over DATA_DIR's database (also used by the CLI)."""
    store = Store(data_dir / DATABASE)
    return Library(data_dir, SqliteLibrary(data_dir / DATABASE), store.lesson_title), store


def setup_library(app: web.Application) -> None:
    settings = app[SETTINGS]
    library, store = open_library(settings.data_path)
    app[LIBRARY] = library
    lessons = app[LESSONS]
    jobs = RenditionJobs(
        library,
        threads=settings.library.job_threads,
        nice=settings.library.job_nice,
        delay=settings.library.process_delay,
        is_live=lambda lesson: lessons.get(lesson) is not None,
    )
    app[JOBS] = jobs
    if settings.library.process_after_lesson:
        lessons.recording_finished.append(jobs.lesson_recorded)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        jobs.start(scan=settings.library.process_after_lesson)
        yield
        await jobs.close()
        library.repository.close()
        store.close()

    app.cleanup_ctx.append(lifecycle)
    setup_library_pages(app)
    setup_library_api(app)
    app.router.add_get("/library/{lesson}/files/{path:.+}", lesson_file)
