"""Administrators logging in and out: /admin/login and /admin/logout.

The session cookie is HttpOnly, SameSite=Strict, and Secure when the server runs
TLS (or its public URL is https). The login form carries its own CSRF token (a
double-submit cookie), and failed logins are limited per login name (`MAX_FAILURES`
in `WINDOW` seconds) and per address (`MAX_FAILURES_PER_ADDRESS`, more, since a
school's whole network may share one address); past either, tries are refused until
the oldest failure ages out, whatever the password.
"""

import asyncio
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web

from server.authz import SESSION_COOKIE, check_origin, current_session
from server.errors import UserError
from server.keys import CLOCK, COUNTY, SETTINGS
from server.pages import render

SESSION_TTL = 12 * 3600.0
LOGIN_COOKIE = "zhuandi_login"
MAX_FAILURES = 5
MAX_FAILURES_PER_ADDRESS = 20
WINDOW = 15 * 60.0


class LoginThrottle:
    """Failed logins per key (an address, a login name) in a sliding window."""

    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, *keys: str) -> float:
        """Seconds until one more try is allowed (0: allowed now)."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            failures = self._recent(key, now)
            if len(failures) >= self.limit:
                wait = max(wait, failures[0] + self.window - now)
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, login_key: str) -> None:
        self._failures.pop(login_key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures


BY_LOGIN: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")
BY_ADDRESS: web.AppKey[LoginThrottle] = web.AppKey("login_throttle_address")


def secure_cookies(app: web.Application) -> bool:
    settings = app[SETTINGS]
    return bool(settings.server.tls_cert) or settings.server.public_url.startswith("https:")


async def login_page(request: web.Request) -> web.StreamResponse:
    if current_session(request) is not None:
        raise web.HTTPSeeOther(_next(request.query.get("next")))
    return _login_form(request)


def _login_form(
    request: web.Request, problem: str = "", status: int = 200, login: str = ""
) -> web.Response:
    nonce = secrets.token_urlsafe(18)
    response = render(
        request,
        "admin_login.html",
        status=status,
        nonce=nonce,
        problem=problem,
        login=login,
        next=_next(request.query.get("next")),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request.app),
        path="/admin",
        max_age=3600,
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    check_origin(request)
    form = await request.post()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get("nonce")
    if not nonce or not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
        return _login_form(request, "admin.login.expired", status=403)
    name = str(form.get("login", "")).strip()[:64]
    password = str(form.get("password", ""))[:256]
    by_login, by_address = request.app[BY_LOGIN], request.app[BY_ADDRESS]
    address = str(request.remote)
    login_key = name.lower()
    if by_login.blocked(login_key) > 0 or by_address.blocked(address) > 0:
        return _login_form(request, "admin.login.throttled", status=429, login=name)
    county = request.app[COUNTY]
    admin = await asyncio.to_thread(county.admins.authenticate, name, password)
    if admin is None:
        by_login.failed(login_key)
        by_address.failed(address)
        return _login_form(request, "admin.login.wrong", status=401, login=name)
    by_login.succeeded(login_key)
    session_id, _ = county.admins.open_session(admin, request.app[CLOCK].now(), SESSION_TTL)
    response = web.HTTPSeeOther(_next(str(form.get("next", ""))))
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request.app),
        path="/",
        max_age=int(SESSION_TTL),
    )
    response.del_cookie(LOGIN_COOKIE, path="/admin")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    check_origin(request)
    session = current_session(request)
    if session is not None:
        form = await request.post()
        sent = form.get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            raise UserError("csrf", "the form is out of date; reload the page", status=403)
        request.app[COUNTY].admins.close_session(request.cookies.get(SESSION_COOKIE, ""))
    response = web.HTTPSeeOther("/admin/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def _next(target: str | None) -> str:
    """Only a path on this server (never another site) to go to after logging in."""
    if target and target.startswith("/admin") and "//" not in target and "\\" not in target:
        return target
    return "/admin"


def setup_login(app: web.Application) -> None:
    app[BY_LOGIN] = LoginThrottle(MAX_FAILURES)
    app[BY_ADDRESS] = LoginThrottle(MAX_FAILURES_PER_ADDRESS)
    app.router.add_get("/admin/login", login_page)
    app.router.add_post("/admin/login", login)
    app.router.add_post("/admin/logout", logout)
