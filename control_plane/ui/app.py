"""The dashboard's pages and actions (Starlette + Jinja2), all read from the public API.

Pages: overview, nodes, services, apps, models, operations; their detail pages; JSON for the
plots and the live log tail. Actions (POST, admin only, with the session's CSRF token): pin or
unpin a model version, retrain a model, run a batch or periodic app now, drain or undrain a node.
An action's outcome, the API's error included, is shown on the page it returns to.

Every page is rendered whole on the server; static/ui.js refreshes the parts marked `data-live`
every few seconds by fetching the page again, and draws the plots with Plotly (served from the
plotly package: nothing comes from a CDN).
"""

from __future__ import annotations

import logging
import os
import time
from functools import wraps
from urllib.parse import quote, urlencode

import plotly
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from control_plane.ui import views
from control_plane.ui.api import Api, ApiError
from control_plane.ui.picture import Pictures
from control_plane.ui.sessions import COOKIE, Session, Sessions
from stratum.v1 import access_pb2 as ac, apps_pb2 as a, control_plane_pb2 as cp, history_pb2 as h, models_pb2 as m

log = logging.getLogger("stratum.ui")

HERE = os.path.dirname(os.path.abspath(__file__))
PLOTLY_JS = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
LOG_TAIL_BYTES = 16 * 1024
LIVE_SHARE = 40  # an open page refreshes no more often than every 40 times what building it took
# script-src 'self': no inline script anywhere; Plotly sets inline styles on what it draws.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


class Dashboard:
    def __init__(self, api: Api, sessions: Sessions, pictures: Pictures, *, live_s: float = 5.0,
                 secure_cookie: bool = True):
        self.api, self.sessions, self.pictures = api, sessions, pictures
        self.live_s, self.secure = live_s, secure_cookie
        self.env = Environment(loader=FileSystemLoader(os.path.join(HERE, "templates")),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(ago=views.ago, iso=views.iso, ts=views.ts, duration=views.duration, q=quote)
        self.flashes: dict[str, tuple[str, str]] = {}  # session id -> (level, text) shown once

    # -- plumbing -------------------------------------------------------------------------------
    def render(self, request: Request, template: str, session: Session | None, status: int = 200, **ctx) -> HTMLResponse:
        t0 = time.perf_counter()
        # A page's own refresh (ui.js, X-Live) swaps its live parts only: it must leave a flash for the
        # page an action redirects to, or one that lands in between eats the action's answer.
        live = request.headers.get("X-Live") == "1"
        flash = self.flashes.pop(session.id, None) if session and not live else None
        loaded_s = t0 - getattr(request.state, "t0", t0)  # reading the API for this page
        html = self.env.get_template(template).render(session=session, flash=flash, path=request.url.path,
                                                     live_s=self.live_interval(loaded_s), **ctx)
        r = HTMLResponse(html, status_code=status)
        r.headers["X-Render-Ms"] = f"{(time.perf_counter() - t0) * 1000:.1f}"
        return r

    def live_interval(self, page_s: float) -> float:
        """How often an open page refreshes itself: every live_s, or less often for a page that takes
        long to build, so that one open page never costs the control plane more than 1/LIVE_SHARE
        of a core (a 1,000-node overview is not rebuilt every 5 s if it takes 0.5 s)."""
        return round(max(self.live_s, LIVE_SHARE * page_s), 1)

    def call(self, session: Session, method: str, request):
        return self.api.call(method, request, token=session.token)

    def flash(self, session: Session, level: str, text: str) -> None:
        self.flashes[session.id] = (level, text)
        if len(self.flashes) > 10_000:
            self.flashes.pop(next(iter(self.flashes)))


def _session(dash: Dashboard, request: Request) -> tuple[Session | None, str]:
    return dash.sessions.get(request.cookies.get(COOKIE))


def page(dash: Dashboard, json: bool = False):
    """A handler that needs a logged-in session: else to the login page (or 401 for JSON), saying
    when the session expired. API refusals become an error page with the API's code and message;
    a token the API no longer takes (revoked, expired) ends the session."""
    def wrap(handler):
        @wraps(handler)
        async def endpoint(request: Request):
            request.state.t0 = time.perf_counter()
            session, why = _session(dash, request)
            if session is None:
                if json:
                    return JSONResponse({"error": "session expired" if why else "not logged in"}, status_code=401)
                query = {"next": request.url.path}
                if why:
                    query["expired"] = "1"
                return RedirectResponse(f"/login?{urlencode(query)}", status_code=303)
            try:
                return await handler(request, session)
            except ApiError as e:
                if e.code == "UNAUTHENTICATED":
                    dash.sessions.logout(session.id)
                    return RedirectResponse("/login?" + urlencode({"expired": "1"}), status_code=303)
                status = {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "PERMISSION_DENIED": 403}.get(e.code, 502)
                if json:
                    return JSONResponse({"error": str(e)}, status_code=status)
                return dash.render(request, "error.html", session, status=status, error=e)
        return endpoint
    return wrap


def action(dash: Dashboard):
    """A POST that changes something: a session that may act (admin), and its CSRF token in the form.
    The handler returns (where to go back to, what to say); an API refusal is said there as it came."""
    def wrap(handler):
        @wraps(handler)
        async def endpoint(request: Request):
            session, why = _session(dash, request)
            if session is None:
                return PlainTextResponse("session expired: log in again" if why else "not logged in", status_code=401)
            form = await request.form()
            if not dash.sessions.csrf_ok(session, form.get("csrf")):
                return PlainTextResponse("refused: the form's CSRF token is missing or wrong (reload the page)", status_code=403)
            if not session.can_act:
                return PlainTextResponse(f"refused: {session.who} holds a {session.role} token, which may not act",
                                         status_code=403)
            back = request.headers.get("referer") or "/"
            try:
                back, said = await handler(request, session, form)
                dash.flash(session, "ok", said)
            except ApiError as e:
                dash.flash(session, "error", f"{e.code}: {e.message}"
                           + "".join(f" [{f}: {d}]" for f, d in e.violations))
            return RedirectResponse(back, status_code=303)
        return endpoint
    return wrap


def create_app(dash: Dashboard) -> Starlette:
    sync = run_in_threadpool

    # -- login ----------------------------------------------------------------------------------
    async def login_form(request: Request):
        session, _ = _session(dash, request)
        if session is not None:
            return RedirectResponse("/", status_code=303)
        note = "Your session expired: log in again." if request.query_params.get("expired") else ""
        return dash.render(request, "login.html", None, note=note, next=_safe_next(request.query_params.get("next")))

    async def login(request: Request):
        form = await request.form()
        session = await sync(dash.sessions.login, str(form.get("token") or ""))
        if session is None:
            log.warning("dashboard login refused", extra={"client": request.client.host if request.client else ""})
            return dash.render(request, "login.html", None, status=401, next=_safe_next(form.get("next")),
                               note="That token is not this control plane's admin token or a live access token.")
        log.info("dashboard login", extra={"who": session.who, "role": session.role})
        r = RedirectResponse(_safe_next(form.get("next")) or "/", status_code=303)
        # A browser-session cookie: the server ends the session at its expiry and can then say so
        # (a cookie the browser dropped by itself would look like never having logged in).
        r.set_cookie(COOKIE, session.id, httponly=True, secure=dash.secure, samesite="strict", path="/")
        return r

    async def logout(request: Request):
        session, _ = _session(dash, request)
        form = await request.form()
        if session is not None:
            if not dash.sessions.csrf_ok(session, form.get("csrf")):
                return PlainTextResponse("refused: the form's CSRF token is missing or wrong", status_code=403)
            dash.sessions.logout(session.id)
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(COOKIE, path="/", secure=dash.secure, httponly=True, samesite="strict")
        return r

    # -- pages ----------------------------------------------------------------------------------
    def picture_for(session):
        """The shared overview picture (control_plane/ui/picture.py), after the API has checked
        this viewer's own token (a revoked one ends the session)."""
        dash.call(session, "GetStatus", cp.GetStatusRequest())
        return dash.pictures.get()

    @page(dash)
    async def overview(request, session):
        picture, body, age = await sync(picture_for, session)
        r = dash.render(request, "overview.html", session, picture=picture, picture_json=body.decode())
        r.headers["X-Picture-Age-S"] = f"{age:.2f}"
        r.headers["X-Picture-Build-Ms"] = f"{dash.pictures.build_s * 1000:.1f}"
        return r

    @page(dash, json=True)
    async def overview_json(request, session):
        picture, body, age = await sync(picture_for, session)
        return Response(body, media_type="application/json", headers={"X-Picture-Age-S": f"{age:.2f}",
                                                                     "Cache-Control": "no-store"})

    @page(dash)
    async def nodes(request, session):
        q = request.query_params
        tier, label, state = q.get("tier", ""), q.get("label", "").strip(), q.get("state", "")
        all_nodes = (await sync(dash.call, session, "ListNodes", cp.ListNodesRequest())).nodes
        shown = views.filter_nodes(all_nodes, tier, label, state)
        return dash.render(request, "nodes.html", session, nodes=shown, total=len(all_nodes), tier=tier, label=label,
                           state=state, tiers=sorted({n.tier for n in all_nodes} | set(views.TIERS)))

    @page(dash)
    async def node(request, session):
        name = request.path_params["name"]

        def load():
            n = dash.call(session, "GetNode", cp.GetNodeRequest(id_or_name=name))
            services = dash.call(session, "ListServices", cp.ListServicesRequest()).services
            apps = dash.call(session, "ListApps", cp.ListAppsRequest()).apps
            return n, views.runs_on(n.id, services, apps)
        n, runs = await sync(load)
        return dash.render(request, "node.html", session, node=n, runs=runs, heartbeat=views.ts(n.last_heartbeat))

    @page(dash)
    async def services(request, session):
        found = (await sync(dash.call, session, "ListServices", cp.ListServicesRequest())).services
        return dash.render(request, "services.html", session, services=found)

    @page(dash)
    async def service(request, session):
        name = request.path_params["name"]

        def load():
            s = dash.call(session, "GetService", m.GetServiceRequest(name=name))
            scaling = dash.call(session, "GetHistory", h.GetHistoryRequest(series="scaling", key=name, limit=50))
            return s, views.decisions(scaling.points)
        s, decisions = await sync(load)
        return dash.render(request, "service.html", session, service=s, decisions=decisions)

    @page(dash)
    async def apps(request, session):
        found = (await sync(dash.call, session, "ListApps", cp.ListAppsRequest())).apps
        return dash.render(request, "apps.html", session, apps=found)

    @page(dash)
    async def app(request, session):
        name = request.path_params["name"]

        def load():
            x = dash.call(session, "GetApp", a.GetAppRequest(name=name))
            runs = dash.call(session, "ListAppRuns", a.ListAppRunsRequest(name=name, limit=50)).runs \
                if x.spec.kind in ("batch", "periodic") else []
            return x, runs
        x, runs = await sync(load)
        return dash.render(request, "app.html", session, app=x, runs=runs)

    @page(dash)
    async def app_log(request, session):
        name, q = request.path_params["name"], request.query_params
        req = a.StreamAppLogsRequest(name=name, tail_bytes=LOG_TAIL_BYTES)
        try:
            if q.get("run"):
                req.run = int(q["run"])
            if q.get("instance"):
                req.instance = int(q["instance"])
        except ValueError:
            return PlainTextResponse("run and instance are numbers", status_code=400)
        chunks = await sync(dash.api.stream, "StreamAppLogs", req, session.token, 10.0)
        text = b"".join(c.data for c in chunks).decode(errors="replace")
        return PlainTextResponse(text[-LOG_TAIL_BYTES:], headers={"Cache-Control": "no-store"})

    @page(dash)
    async def models(request, session):
        found = (await sync(dash.call, session, "ListModels", cp.ListModelsRequest())).models
        return dash.render(request, "models.html", session, models=found)

    @page(dash)
    async def model(request, session):
        name = request.path_params["name"]

        def load():
            x = dash.call(session, "GetModel", m.GetModelRequest(name=name))
            versions = dash.call(session, "ListModelVersions", cp.ListModelVersionsRequest(name=name)).versions
            ops = dash.call(session, "ListOperations", cp.ListOperationsRequest(target=f"model/{name}", limit=50)).operations
            return x, list(reversed(versions)), ops
        x, versions, ops = await sync(load)
        return dash.render(request, "model.html", session, model=x, versions=versions, operations=ops,
                           boards={v.version: views.leaderboard(v) for v in versions})

    @page(dash)
    async def script(request, session):
        name, version = request.path_params["name"], request.query_params.get("version", "")
        s = await sync(dash.call, session, "GetTrainingScript", m.GetTrainingScriptRequest(name=name, version=version))
        return Response(s.source, media_type="text/x-python",
                        headers={"Content-Disposition": f'attachment; filename="{s.filename}"'})

    @page(dash)
    async def operations(request, session):
        ops = (await sync(dash.call, session, "ListOperations", cp.ListOperationsRequest(limit=100))).operations
        return dash.render(request, "operations.html", session, operations=ops)

    PLOTS = {"node": ("node", views.node_plot), "latency": ("service", views.latency_plot),
             "demand": ("service", views.demand_plot), "drift": ("drift", views.drift_plot)}

    @page(dash, json=True)
    async def plot(request, session):
        kind, key = request.path_params["kind"], request.query_params.get("key", "")
        if kind not in PLOTS:
            return JSONResponse({"error": f"no plot {kind!r}: expected {', '.join(PLOTS)}"}, status_code=404)
        series, make = PLOTS[kind]
        points = (await sync(dash.call, session, "GetHistory", h.GetHistoryRequest(series=series, key=key))).points
        return JSONResponse(make(points), headers={"Cache-Control": "no-store"})

    # -- actions --------------------------------------------------------------------------------
    @action(dash)
    async def pin(request, session, form):
        name, version = request.path_params["name"], str(form.get("version") or "")
        await sync(dash.call, session, "PinModelVersion", cp.PinModelVersionRequest(name=name, version=version))
        return f"/models/{quote(name)}", (f"model {name}: version {version} pinned; its services roll to it" if version
                                          else f"model {name}: unpinned, serving its latest version")

    @action(dash)
    async def retrain(request, session, form):
        name = request.path_params["name"]
        x = await sync(dash.call, session, "RetrainModel",
                       m.RetrainModelRequest(name=name, reason=f"manual (dashboard, {session.who})"))
        return f"/models/{quote(name)}", f"model {name}: retraining (operation {x.operation.id})"

    @action(dash)
    async def run_now(request, session, form):
        name = request.path_params["name"]
        r = await sync(dash.call, session, "RunAppNow", a.RunAppNowRequest(name=name))
        return f"/apps/{quote(name)}", f"app {name}: run {r.number} {r.state}"

    @action(dash)
    async def drain(request, session, form):
        name, on = request.path_params["name"], form.get("drain") == "1"
        await sync(dash.call, session, "DrainNode", cp.DrainNodeRequest(id_or_name=name, drain=on))
        return f"/nodes/{quote(name)}", (f"node {name} drained: what ran there moves to other nodes" if on
                                         else f"node {name} takes work again")

    async def healthz(request):
        return PlainTextResponse("ok")

    async def plotly_js(request):
        return FileResponse(PLOTLY_JS, media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})

    routes = [
        Route("/login", login_form, methods=["GET"]), Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]), Route("/healthz", healthz),
        Route("/", overview), Route("/nodes", nodes), Route("/nodes/{name}", node),
        Route("/nodes/{name}/drain", drain, methods=["POST"]),
        Route("/services", services), Route("/services/{name}", service),
        Route("/apps", apps), Route("/apps/{name}", app), Route("/apps/{name}/log", app_log),
        Route("/apps/{name}/run", run_now, methods=["POST"]),
        Route("/models", models), Route("/models/{name}", model), Route("/models/{name}/script", script),
        Route("/models/{name}/pin", pin, methods=["POST"]), Route("/models/{name}/retrain", retrain, methods=["POST"]),
        Route("/operations", operations), Route("/api/plot/{kind}", plot), Route("/api/overview", overview_json),
        Route("/static/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
    ]
    starlette = Starlette(routes=routes)
    return SecurityHeaders(starlette)


def _safe_next(value) -> str:
    """Only a path on this site: never an open redirect to another one."""
    value = str(value or "")
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else ""


class SecurityHeaders:
    """ASGI middleware: CSP and friends on every answer, no caching of pages, and the server time of
    each request (Server-Timing), which bench/ui reads."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                            (b"server-timing", f"app;dur={(time.perf_counter() - t0) * 1000:.1f}".encode())]
                if not static and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
