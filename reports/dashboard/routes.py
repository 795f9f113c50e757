"""``/dashboard`` on the exporter: the login form, the page and its assets, and the
pipeline panel's figures. The page reads the slices from the stats API itself
(``/api/v1/stats``), which admits a dashboard session as it admits the API key,
so the page shows what the API answers and nothing computed beside it."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import available_timezones

from aiohttp import web

from app.edge.api_keys import ApiKeyGate
from reports.dashboard.pipeline import PipelineWatch
from reports.dashboard.sessions import Sessions

SESSIONS = web.AppKey("dashboard_sessions", Sessions)
PIPELINE = web.AppKey("dashboard_pipeline", PipelineWatch)
GATE = web.AppKey("dashboard_gate", ApiKeyGate)

STATIC = Path(str(resources.files("reports.dashboard") / "static"))
# The charting library: plotly.js as the pinned `plotly` wheel ships it, served from
# here (the machines that run this often have no internet, so no CDN).
PLOTLY_JS = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
ASSETS = {
    "dashboard.js": STATIC / "dashboard.js",
    "dashboard.css": STATIC / "dashboard.css",
    "plotly.min.js": PLOTLY_JS,
}
# Scripts and styles from here only; Plotly sets inline styles on what it draws and
# draws its images from data: URLs.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; frame-ancestors 'none'; form-action 'self'"
)
LOGIN_FORM_LIMIT = 4096


@cache
def _zones() -> list[str]:
    # Read from the zone files when first asked, not at the exporter's start (a walk
    # of some 600 files, about 20 ms).
    return sorted(available_timezones() - {"localtime", "Factory"})


def _page(name: str, status: int = 200, message: str = "") -> web.Response:
    text = (STATIC / name).read_text().replace("{message}", html.escape(message))
    response = web.Response(text=text, status=status, content_type="text/html")
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


async def dashboard(request: web.Request) -> web.StreamResponse:
    if not request.app[SESSIONS].holds(request):
        raise web.HTTPSeeOther("/dashboard/login")
    return _page("index.html")


async def login_form(request: web.Request) -> web.StreamResponse:
    if request.app[SESSIONS].holds(request):
        raise web.HTTPSeeOther("/dashboard")
    return _page("login.html")


async def log_in(request: web.Request) -> web.StreamResponse:
    if (request.content_length or 0) > LOGIN_FORM_LIMIT:
        return _page("login.html", 413, "That form was too large to be a login.")
    try:
        form = await request.post()
    except ValueError:
        return _page("login.html", 400, "That was not a login form.")
    given = form.get("api_key")
    if not isinstance(given, str) or not given.strip():
        return _page("login.html", 400, "Enter the installation's API key.")
    if not request.app[GATE].admits_given(request, given.strip()):
        # The same answer whatever was wrong with the key; the refusal is logged.
        return _page("login.html", 401, "That is not this installation's API key.")
    response = web.HTTPSeeOther("/dashboard")
    request.app[SESSIONS].start(request, response)
    raise response


async def log_out(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/dashboard/login")
    Sessions.end(response)
    raise response


async def asset(request: web.Request) -> web.StreamResponse:
    path = ASSETS.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text=f"no asset {request.match_info['name']!r}")
    response = web.FileResponse(path)
    # Revalidated each time (FileResponse answers 304 to an unchanged file), so a new
    # version of the page never runs with an old script.
    response.headers["Cache-Control"] = "no-cache"
    return response


async def zones(request: web.Request) -> web.Response:
    """The IANA time zones the stats API takes, for the page's picker."""
    return web.json_response(_zones())


async def pipeline(request: web.Request) -> web.Response:
    if not request.app[SESSIONS].holds(request):
        return web.json_response({"error": "log in at /dashboard/login first"}, status=401)
    return web.json_response(await request.app[PIPELINE].latest())


def add_dashboard(
    app: web.Application, gate: ApiKeyGate, sessions: Sessions, watch: PipelineWatch
) -> None:
    app[GATE] = gate
    app[SESSIONS] = sessions
    app[PIPELINE] = watch
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard/login", login_form)
    app.router.add_post("/dashboard/login", log_in)
    app.router.add_post("/dashboard/logout", log_out)
    app.router.add_get("/dashboard/assets/{name}", asset)
    app.router.add_get("/dashboard/pipeline", pipeline)
    app.router.add_get("/dashboard/zones", zones)
