"""Who may do what on the administration pages and APIs: the one place.

Every administrative route is registered with `admin_route(app, method, path,
action, handler)`. The wrapper finds the session (an HttpOnly cookie), checks the
administrator's role against `POLICY[action]`, and for every request that
changes something checks the CSRF token and the Origin. Handlers then only narrow
to a school with `require_school` (a school administrator acts on their own
school only) or list with `school_scope`. `app[ADMIN_ROUTES]` lists every route
with its action, so that a test can try each one with each role.
"""

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

from server.admins import Admin, Session
from server.errors import UserError
from server.keys import CLOCK, COUNTY

COUNTY_ROLE, SCHOOL_ROLE = "county", "school"
EVERYONE = frozenset({COUNTY_ROLE, SCHOOL_ROLE})

POLICY: dict[str, frozenset[str]] = {
    "home": EVERYONE,
    "directory.view": EVERYONE,
    "directory.edit": EVERYONE,  # classrooms and teachers of one's own school
    "schools.edit": frozenset({COUNTY_ROLE}),  # schools and subjects
    "devices.manage": EVERYONE,  # issue, rotate and revoke device tokens
    "timetable.view": EVERYONE,
    "timetable.edit": EVERYONE,  # lessons whose 主讲 classroom is one's own school's
    "stats.view": EVERYONE,
    "health.view": EVERYONE,
}
SESSION_COOKIE = "zhuandi_admin"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD")
SESSION = web.RequestKey("admin_session", Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str
    action: str
    page: bool  # an HTML page (redirects to the login) rather than an API (401)


ADMIN_ROUTES: web.AppKey[list[AdminRoute]] = web.AppKey("admin_routes")


def admin_route(
    app: web.Application, method: str, path: str, action: str, handler: Handler, page: bool = True
) -> None:
    if action not in POLICY:
        raise ValueError(f"unknown action {action!r}")
    app.setdefault(ADMIN_ROUTES, []).append(AdminRoute(method, path, action, page))

    async def checked(request: web.Request) -> web.StreamResponse:
        request[SESSION] = await authorize(request, action, page)
        return await handler(request)

    app.router.add_route(method, path, checked)


async def authorize(request: web.Request, action: str, page: bool) -> Session:
    session = current_session(request)
    if session is None:
        if page and request.method in SAFE_METHODS:
            target = URL("/admin/login").with_query(next=request.rel_url.path_qs)
            raise web.HTTPSeeOther(str(target))
        raise UserError("login_required", "log in as an administrator first", status=401)
    if session.admin.role not in POLICY[action]:
        raise UserError("forbidden", "your role may not do this", status=403)
    if request.method not in SAFE_METHODS:
        check_origin(request)
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not sent or not hmac.compare_digest(sent, session.csrf):
            raise UserError("csrf", "the form is out of date; reload the page", status=403)
    return session


def current_session(request: web.Request) -> Session | None:
    county = request.app[COUNTY]
    return county.admins.session(request.cookies.get(SESSION_COOKIE, ""), request.app[CLOCK].now())


def check_origin(request: web.Request) -> None:
    """A change must not come from another site's page. Our pages' referrer policy
    is no-referrer, under which browsers send `Origin: null` even from our own
    forms; that, and no Origin at all (a script), still need the SameSite=Strict
    session cookie and the CSRF token, which are the real defence."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return
    if URL(origin).host != request.url.host:
        raise UserError("bad_origin", f"requests from {origin} are not allowed", status=403)


def admin_of(request: web.Request) -> Admin:
    return request[SESSION].admin


def school_scope(request: web.Request) -> str | None:
    """None for a county administrator (everything), else their school."""
    admin = admin_of(request)
    return None if admin.role == COUNTY_ROLE else admin.school


def require_school(request: web.Request, school: str) -> None:
    """A school administrator may only act on their own school."""
    scope = school_scope(request)
    if scope is not None and scope != school:
        raise UserError("forbidden", "this belongs to another school", status=403)
