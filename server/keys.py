"""Typed keys for what the application holds."""

import jinja2
from aiohttp import web

from config import Settings
from server.clock import Clock
from server.county import County
from server.jobs import RenditionJobs
from server.lessons import Lessons
from server.library import Library
from server.scheduler import Scheduler
from server.tokens import Tokens

SETTINGS = web.AppKey("settings", Settings)
WORKER = web.AppKey("worker", int)  # set in a media worker process: its index
LESSONS = web.AppKey("lessons", Lessons)
TOKENS = web.AppKey("tokens", Tokens)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")
LIBRARY = web.AppKey("library", Library)
JOBS = web.AppKey("jobs", RenditionJobs)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
COUNTY = web.AppKey("county", County)
SCHEDULER = web.AppKey("scheduler", Scheduler)
