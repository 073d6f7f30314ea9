"""The statistics for school and county administrators: a page per report with
its chart (SVG) and table, its CSV (/admin/stats/{report}.csv) and its JSON
(GET /api/stats/{report}). All three take ?from=YYYY-MM-DD&to=YYYY-MM-DD
(local days, inclusive), ?period=week|month|term and, for the county, ?school=ID.
"""

import csv
import io
from datetime import date, datetime
from typing import Any

from aiohttp import web
from markupsafe import Markup

from server.admin_pages import admin_render
from server.authz import admin_route, school_scope
from server.charts import bars, lines
from server.errors import UserError
from server.i18n import pick_language, translate
from server.keys import CLOCK, COUNTY
from server.stats import PERIODS
from server.stats_report import REPORTS, Range, Report, Reports
from server.timetable_csv import parse_date

MAX_DAYS = 800


def range_of(request: web.Request) -> Range:
    county = request.app[COUNTY]
    today = datetime.fromtimestamp(request.app[CLOCK].now(), county.zone).date()
    term_start = (
        date(today.year, 2, 1)
        if 2 <= today.month <= 7
        else (date(today.year if today.month >= 8 else today.year - 1, 8, 1))
    )
    first = _date(request, "from", term_start)
    last = _date(request, "to", today)
    if last < first:
        raise UserError("bad_query", "'to' must not be before 'from'")
    if (last - first).days > MAX_DAYS:
        raise UserError("bad_query", f"choose at most {MAX_DAYS} days")
    period = request.query.get("period", "week")
    if period not in PERIODS:
        raise UserError("bad_query", f"period must be one of {', '.join(PERIODS)}")
    school = school_scope(request)
    if school is None and request.query.get("school"):
        school = request.query["school"]
    return Range(first, last, period, school)


def _date(request: web.Request, name: str, default: date) -> date:
    text = request.query.get(name, "")
    if not text:
        return default
    found = parse_date(text)
    if found is None:
        raise UserError("bad_query", f"{name}: {text!r} is not a date (YYYY-MM-DD)")
    return found


def _report(request: web.Request, name: str) -> tuple[Report, Range]:
    if name not in REPORTS:
        raise UserError("not_found", f"there is no report {name!r}", status=404)
    span = range_of(request)
    reports = Reports(request.app[COUNTY], request.app[CLOCK].now())
    return reports.build(name, span), span


def label(language: str, column: str, value: Any) -> str:
    """How a cell reads on the page: periods and terms in words, numbers as is."""
    if value is None:
        return "–"
    if column == "period" and isinstance(value, str) and value.endswith(("spring", "autumn")):
        year, _, season = value.partition("-")
        return translate(language, f"stats.term.{season}", year=year)
    return str(value)


async def stats_page(request: web.Request) -> web.Response:
    name = request.query.get("report", "rate")
    try:
        report, span = _report(request, name)
        problem = ""
    except UserError as exc:
        if exc.status == 404:
            raise
        report, span, problem = None, None, exc.message
    language = pick_language(request)
    chart = chart_of(request, report, language) if report is not None else Markup("")
    county = request.app[COUNTY]
    scope = school_scope(request)
    return admin_render(
        request,
        "admin_stats.html",
        "stats",
        status=400 if problem else 200,
        reports=REPORTS,
        report=report,
        name=name,
        chart=chart,
        problem=problem,
        query={k: request.query.get(k, "") for k in ("from", "to", "period", "school")},
        span=span,
        periods=PERIODS,
        schools=county.directory.schools() if scope is None else [],
        cell=lambda column, value: label(language, column, value),
        csv_query=request.query_string,
    )


def chart_of(request: web.Request, report: Report, language: str) -> Markup:
    title = translate(language, f"stats.report.{report.name}")
    empty = translate(language, "stats.empty")
    chart = report.chart
    if chart.get("kind") == "lines":
        series = [(s["name"], [(t, v) for t, v in s["points"]]) for s in chart["series"]]
        return lines(
            title,
            series,
            chart["start"],
            chart["end"],
            request.app[COUNTY].zone,
            unit=chart.get("unit", ""),
            empty=empty,
        )
    labels = [label(language, chart["label"], r[chart["label"]]) for r in report.rows]
    values = [r[chart["value"]] for r in report.rows]
    return bars(
        title, labels, values, unit=chart.get("unit", ""), maximum=chart.get("max"), empty=empty
    )


async def stats_csv(request: web.Request) -> web.Response:
    report, span = _report(request, request.match_info["report"])
    language = pick_language(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([translate(language, f"stats.col.{c}") for c in report.columns])
    for row in report.rows:
        writer.writerow([_cell(row[c]) for c in report.columns])
    filename = f"zhuandi-{report.name}-{span.first}-{span.last}.csv"
    # the BOM lets Excel open UTF-8 Chinese text correctly
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


async def stats_api(request: web.Request) -> web.Response:
    report, span = _report(request, request.match_info["report"])
    return web.json_response(
        {
            "report": report.name,
            "from": span.first.isoformat(),
            "to": span.last.isoformat(),
            "period": span.period,
            "school": span.school,
            "columns": report.columns,
            "rows": report.rows,
        }
    )


def setup_stats(app: web.Application) -> None:
    admin_route(app, "GET", "/admin/stats", "stats.view", stats_page)
    admin_route(app, "GET", "/admin/stats/{report}.csv", "stats.view", stats_csv)
    admin_route(app, "GET", "/api/stats/{report}", "stats.view", stats_api, page=False)
