"""The dashboard in a real headless Chromium, against a real control plane with three node daemons
(edge, fog, and one labelled cloud) running the smart-traffic pipeline, applied with terraform from
modules/examples/smart-traffic as a user would.

Checked: login (wrong token refused, the cookie's flags), every page renders with the real names
and a plot holds points, the actions take effect (run the aggregate job now -> a dataset version ->
the model retrains; pin a version -> the service rolls to it; drain a node), an action without the
CSRF token or from a read token is refused and changes nothing, an action the API refuses shows the
API's error, an expired session and a revoked token send the browser to the login page, logout
ends the session, the certificate is the control plane's, pages fit a phone's width, and no secret
appears in any page. Screenshots of each page go to the test's temp dir (and, with
STRATUM_UI_SCREENSHOTS=<dir>, there too: docs/screenshots/ holds a few)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import time
from pathlib import Path

import grpc
import httpx
import pytest
from markupsafe import escape
from selenium.webdriver.common.by import By

from stratum.v1 import access_pb2 as ac, apps_pb2 as a, control_plane_pb2 as cp, models_pb2 as m
from tests.harness import ControlPlane, NodeDaemon, wait_for
from tests.lifecycle import wait_service
from tests.provider.tfharness import Workspace
from tests.ui import browser
from tests.ui.browser import texts, wait

# One worker, one site: every test of this module shares the module-scoped pipeline (tests/conftest.py
# groups it; the marker keeps the tests that do not use it there too).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.xdist_group("ui")]

EXAMPLE = Path(__file__).resolve().parents[2] / "modules" / "examples" / "smart-traffic"
# The aggregate job runs only when asked (Run now), so what the test sees is what it did.
TFVARS = 'aggregate_cron = "0 0 1 1 *"\nbroker_port = 0\nsensor_rate = 4\nwindow_s = 1\n'
NODES = (("edge-1", "edge", {"zone": "north"}), ("fog-1", "fog", {"zone": "central"}),
         ("cloud-1", "cloud", {"zone": "central"}))
PAGES = ("/", "/nodes", "/nodes/fog-1", "/services", "/services/congestion", "/apps", "/apps/processor",
         "/apps/aggregate", "/models", "/models/congestion", "/operations")


class Site:
    def __init__(self, root: Path, provider_home: Path):
        self.root = root
        self.plane = ControlPlane(str(root), ui=True, extra=["--history-interval", "2s"]).start()
        self.nodes = [NodeDaemon(str(root), name, self.plane.endpoint, self.plane.join_token, tier=tier,
                                 labels=labels).start() for name, tier, labels in NODES]
        self.api = self.plane.client()
        wait_for(lambda: sorted(n.name for n in self.api.nodes().values() if n.state == "ready") ==
                 sorted(n for n, _, _ in NODES), 60, what="three nodes ready")
        self.ws = Workspace(root / "tf", provider_home, {"STRATUM_ENDPOINT": self.plane.endpoint,
                                                        "STRATUM_TOKEN": self.plane.admin_token,
                                                        "STRATUM_CA_CERT": self.plane.ca_pem_path})
        shutil.copy(EXAMPLE / "main.tf", self.ws.dir / "main.tf")
        shutil.copytree(EXAMPLE / "apps", self.ws.dir / "apps", ignore=shutil.ignore_patterns("__pycache__"))
        (self.ws.dir / "data").mkdir()
        shutil.copy(EXAMPLE / "data" / "traffic.csv", self.ws.dir / "data" / "traffic.csv")
        (self.ws.dir / "ui.auto.tfvars").write_text(TFVARS)
        self.ws.apply()
        self.url = self.plane.ui_url
        self.shots = [root / "screenshots"] + ([Path(os.environ["STRATUM_UI_SCREENSHOTS"])]
                                               if os.environ.get("STRATUM_UI_SCREENSHOTS") else [])
        for d in self.shots:
            d.mkdir(parents=True, exist_ok=True)
        self.sources: dict[str, str] = {}  # every page the browser saw, for the secrets check

    def secrets(self) -> list[str]:
        join = Path(self.plane.data_dir, "join.token").read_text().strip()
        return [self.plane.admin_token, join, join.rsplit(".", 1)[-1]]

    def close(self) -> None:
        self.api.close()
        try:
            self.ws.destroy()
        finally:
            for n in self.nodes:
                n.stop()
            self.plane.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, provider_home):
    s = Site(tmp_path_factory.mktemp("ui"), provider_home)
    yield s
    s.close()


@pytest.fixture
def driver(tmp_path):
    d = browser.start(str(tmp_path / "chromium"))
    yield d
    d.quit()


def login(driver, site, token: str) -> None:
    driver.get(site.url + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()


def visit(driver, site, path: str, shot: str = "") -> str:
    driver.get(site.url + path)
    wait(driver, lambda d: d.execute_script("return document.readyState") == "complete", what=f"{path} loaded")
    site.sources[path] = driver.page_source
    if shot:
        for d in site.shots:
            driver.save_screenshot(str(d / f"{shot}.png"))
    return driver.page_source


def plot_points(driver, element_id: str) -> int:
    """Points the page's plot holds: ui.js sets data-points from the figure it drew."""
    return int(driver.find_element(By.ID, element_id).get_attribute("data-points") or 0)


def http(site, cookies: dict | None = None) -> httpx.Client:
    """An HTTPS client that trusts only the control plane's CA (so it checks the certificate)."""
    ctx = ssl.create_default_context(cafile=site.plane.ca_pem_path)
    return httpx.Client(base_url=site.url, verify=ctx, cookies=cookies or {}, follow_redirects=False, timeout=30)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def runs_of(site, app: str) -> list:
    return list(site.api.ListAppRuns(a.ListAppRunsRequest(name=app, limit=100)).runs)


# -- the tour: every page, a plot, the actions ------------------------------------------------------
def test_an_admin_sees_every_page_acts_and_the_pipeline_follows(site, driver):
    driver.get(site.url + "/")
    assert driver.current_url.startswith(site.url + "/login")  # not logged in: to the login page
    login(driver, site, "not-the-token")
    refusal = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".flash"), what="the refusal")[0].text
    assert "not this control plane's admin token" in refusal
    assert driver.get_cookie("stratum_session") is None
    login(driver, site, site.plane.admin_token)
    wait(driver, lambda d: d.current_url.rstrip("/") == site.url, what="the overview after login")
    cookie = driver.get_cookie("stratum_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie

    # Overview: nodes in their tier's column, what runs on each, connects_to arrows, counts.
    visit(driver, site, "/", "overview")
    columns = {c.find_element(By.TAG_NAME, "h2").text.split()[0].lower(): c for c in driver.find_elements(By.CSS_SELECTOR, ".tier")}
    assert list(columns) == ["cloud", "fog", "edge"]
    assert texts(columns["fog"], ".node-head a") == ["fog-1"] and texts(columns["edge"], ".node-head a") == ["edge-1"]
    fog_chips = {c.get_attribute("data-workload") for c in columns["fog"].find_elements(By.CSS_SELECTOR, ".chip")}
    assert {"app/broker", "app/processor", "app/dashboard"} <= fog_chips
    assert {c.get_attribute("data-workload") for c in columns["edge"].find_elements(By.CSS_SELECTOR, ".chip")} >= {"app/sensors"}
    assert "app/aggregate" in {c.get_attribute("data-workload") for c in columns["cloud"].find_elements(By.CSS_SELECTOR, ".chip")}
    links = {(p.get_attribute("data-from"), p.get_attribute("data-to"))
             for p in driver.find_elements(By.CSS_SELECTOR, "svg.links path[data-from]")}
    assert {("app/processor", "app/broker"), ("app/processor", "service/congestion"), ("app/sensors", "app/broker")} <= links
    counts = driver.find_element(By.ID, "counts").text
    assert "3 nodes ready" in counts and "$0.0000/h cloud pools" in counts, counts

    # Nodes: the list filters, a node's page shows its capabilities, load history and what it runs.
    visit(driver, site, "/nodes?tier=fog", "nodes")
    assert texts(driver, "#node-list tbody tr td:first-child") == ["fog-1"]
    visit(driver, site, "/nodes?label=zone%3Dcentral")
    assert sorted(texts(driver, "#node-list tbody tr td:first-child")) == ["cloud-1", "fog-1"]
    visit(driver, site, "/nodes/fog-1")
    facts = driver.find_element(By.ID, "facts").text
    assert "fog" in facts and "cores" in facts and "mosquitto" in facts and "ago" in facts
    runs_here = driver.find_element(By.ID, "runs-here").text
    assert "broker" in runs_here and "processor" in runs_here and "dashboard" in runs_here
    wait(driver, lambda d: d.refresh() or (time.sleep(1.5) or plot_points(d, "plot-node") > 0), 60,
         what="the node's CPU/memory plot to hold points")
    visit(driver, site, "/nodes/fog-1", "node")

    # Services: the congestion service with its placement, endpoint and version; its plots hold the
    # minutes the processor's requests made (nodes report each minute once it has ended).
    visit(driver, site, "/services")
    assert "congestion" in texts(driver, "#service-list tbody td:first-child")
    service = site.api.GetService(m.GetServiceRequest(name="congestion"))
    visit(driver, site, "/services/congestion")
    summary = driver.find_element(By.ID, "summary").text
    assert service.version in summary and service.endpoints[0] in summary

    # Apps: the processor's instance and log; the aggregate job run now from the page.
    visit(driver, site, "/apps", "apps")
    listed = texts(driver, "#app-list tbody td:first-child")
    assert {"broker", "processor", "sensors", "dashboard", "aggregate"} <= set(listed), listed
    visit(driver, site, "/apps/processor")
    assert "fog-1" in driver.find_element(By.ID, "summary").text
    wait(driver, lambda d: len(d.find_element(By.ID, "log-tail").text) > 20, 30, what="the processor's log tail")

    before = site.api.GetModel(m.GetModelRequest(name="congestion"))
    visit(driver, site, "/apps/aggregate")
    driver.find_element(By.ID, "run-now").click()
    flash = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".flash").text, what="the run-now answer")
    assert re.match(r"app aggregate: run 1 \w+", flash), flash
    (run,) = runs_of(site, "aggregate")
    assert run.number == 1  # the click made exactly one run
    done = wait_for(lambda: (r := runs_of(site, "aggregate")[0]).state in ("succeeded", "failed") and r, 120,
                    interval=0.5, what="the aggregate run")
    assert done.state == "succeeded" and done.dataset_version == 2, done
    visit(driver, site, "/apps/aggregate")
    row = wait(driver, lambda d: d.refresh() or [r for r in texts(d, "#runs tbody tr") if "succeeded" in r], 20,
               what="the run in the runs table")[0]
    assert row.split()[0] == "1" and " 0 " in f" {row} " and "cloud-1" in row, row  # number, exit code, node
    wait(driver, lambda d: "aggregate" in d.find_element(By.ID, "log-tail").text.lower() or
         "rows" in d.find_element(By.ID, "log-tail").text, 30, what="the run's log in the page")
    visit(driver, site, "/apps/aggregate", "app")

    # The new dataset version retrains the model (retrain.on_new_data): two versions on its page.
    model = wait_for(lambda: (x := site.api.GetModel(m.GetModelRequest(name="congestion"))).operation.state == "succeeded"
                     and len(x.versions) == 2 and x, 240, interval=1, what="the model retrained on dataset version 2")
    visit(driver, site, "/models", "models")
    assert "congestion" in texts(driver, "#model-list tbody td:first-child")
    visit(driver, site, "/models/congestion", "model")
    versions = texts(driver, "#versions details summary b")
    assert sorted(versions) == sorted(model.versions)
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.leaderboard")) == 2
    history = driver.find_element(By.ID, "retraining").text
    # why each training ran, and why its version rolled out or not
    assert "create" in history and "dataset: traffic version 2" in history, history
    assert ("kept " in history or "replaces " in history) and f"trained version {model.versions[1]}" in history, history
    assert driver.find_element(By.ID, "plot-drift").get_attribute("data-plot") == "/api/plot/drift?key=congestion"
    script = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done);",
        f"/models/congestion/script?version={model.versions[0]}")
    assert "sklearn" in script and model.versions[0] in script

    # Pin the version that is not serving: the service rolls to it.
    other = next(v for v in model.versions if v != model.serving.version)
    pin = driver.find_element(By.CSS_SELECTOR, f'button.pin[data-version="{other}"]')
    pin.find_element(By.XPATH, "./ancestor::details/summary").click()  # open that version's details
    wait(driver, lambda d: pin.is_displayed(), what="the pin button shown")
    pin.click()
    flash = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".flash").text, what="the pin answer")
    assert flash == f"model congestion: version {other} pinned; its services roll to it"
    assert driver.find_element(By.ID, "serving-version").text == other
    assert driver.find_element(By.ID, "pinned-version").text == other
    rolled = wait_service(site.api, "congestion", other)
    assert all(p.version == other for p in rolled.placements)
    visit(driver, site, "/services/congestion")
    assert other in driver.find_element(By.ID, "summary").text
    driver.find_element(By.ID, "plot-latency")  # drawn by ui.js once minutes are stored

    # Operations: both trainings, with their progress.
    visit(driver, site, "/operations", "operations")
    ops = driver.find_element(By.ID, "operations").text
    assert ops.count("model/congestion") >= 2 and "succeeded" in ops

    # The service's own plots: the minutes of requests the processor made, against the objective.
    def latency_points(d):
        d.get(site.url + "/services/congestion")
        time.sleep(2)
        return plot_points(d, "plot-latency") > 0 and plot_points(d, "plot-demand") > 0
    wait(driver, latency_points, 180, what="the service's latency and demand plots to hold points")
    visit(driver, site, "/services/congestion", "service")

    # Everything fits a phone's width.
    driver.set_window_size(390, 844)
    for path in ("/", "/nodes", "/apps/aggregate", "/models/congestion"):
        visit(driver, site, path)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)
    visit(driver, site, "/", "overview-phone")

    # Drain the cloud node from its page: the aggregate job's instance has nowhere else to go (only
    # cloud-1 is cloud), so it stays there and the app says why; undrain makes it whole again.
    driver.set_window_size(1280, 800)
    visit(driver, site, "/nodes/cloud-1")
    driver.find_element(By.ID, "drain").click()
    assert "drained" in wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".flash").text, what="drain answer")
    assert site.api.nodes()["cloud-1"].drain
    assert "drained" in wait_for(lambda: site.api.GetApp(a.GetAppRequest(name="aggregate")).message, 20,
                                 what="the aggregate job saying its node is drained")
    driver.find_element(By.ID, "drain").click()  # now "Undrain"
    wait(driver, lambda d: "takes work again" in d.find_element(By.CSS_SELECTOR, ".flash").text, what="undrain answer")
    assert not site.api.nodes()["cloud-1"].drain

    # Logout ends the session: the old cookie no longer opens a page.
    driver.find_element(By.CSS_SELECTOR, "header form button").click()
    wait(driver, lambda d: "/login" in d.current_url, what="the login page after logout")
    with http(site, {"stratum_session": cookie["value"]}) as c:
        assert c.get("/").headers["location"].startswith("/login")


def test_no_secret_in_any_page(site, driver):
    login(driver, site, site.plane.admin_token)
    for path in PAGES:
        visit(driver, site, path)
    for path in ("/api/plot/node?key=fog-1", "/api/plot/latency?key=congestion", "/apps/processor/log?instance=0"):
        driver.get(site.url + path)
        site.sources[path] = driver.page_source
    assert len(site.sources) >= len(PAGES)
    for path, html in site.sources.items():
        for secret in site.secrets():
            assert secret not in html, f"a secret appears in {path}"


def test_actions_need_the_csrf_token_and_show_the_apis_errors(site):
    with http(site) as c:
        r = c.post("/login", data={"token": site.plane.admin_token})
        assert r.status_code == 303 and "stratum_session" in r.cookies
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "secure" in set_cookie and "samesite=strict" in set_cookie
        # The overview's picture is built once and shared: a second look within its fresh window reuses it.
        # (A look at an old picture, left by the module's earlier tests, starts a rebuild: wait for a new one.)
        def fresh_look():
            r = c.get("/")
            return r if r.status_code == 200 and float(r.headers["x-picture-age-s"]) < 1.0 else None

        first = wait_for(fresh_look, 30, interval=0.2, what="a freshly built overview")
        second = c.get("/")
        assert first.status_code == second.status_code == 200
        assert float(second.headers["x-picture-age-s"]) >= float(first.headers["x-picture-age-s"])
        assert float(second.headers["x-picture-build-ms"]) > 0 and '"tiers":' in c.get("/api/overview").text
        page = c.get("/apps/aggregate")
        assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'self'")
        token = csrf_of(page.text)
        runs = len(runs_of(site, "aggregate"))
        for form in ({}, {"csrf": "forged"}, {"csrf": ""}):
            r = c.post("/apps/aggregate/run", data=form)
            assert r.status_code == 403 and "CSRF" in r.text
        assert len(runs_of(site, "aggregate")) == runs  # nothing ran

        # A pin the API refuses: the page shows the API's own words.
        with pytest.raises(grpc.RpcError) as e:
            site.api.PinModelVersion(cp.PinModelVersionRequest(name="congestion", version="000000000000"))
        r = c.post("/models/congestion/pin", data={"csrf": token, "version": "000000000000"})
        assert r.status_code == 303
        # an open page refreshing itself before the redirect is followed leaves the answer for that page
        live = c.get(r.headers["location"], headers={"X-Live": "1"})
        assert live.status_code == 200 and "INVALID_ARGUMENT" not in live.text
        shown = c.get(r.headers["location"]).text
        assert f"INVALID_ARGUMENT: {escape(e.value.details())}" in shown
        # Pages of things that do not exist answer NOT_FOUND as the API does; bad plot names 404.
        with pytest.raises(grpc.RpcError) as e:
            site.api.GetModel(m.GetModelRequest(name="no-such-model"))
        r = c.get("/models/no-such-model")
        assert r.status_code == 404 and str(escape(e.value.details())) in r.text
        assert c.get("/api/plot/weather?key=x").status_code == 404
        r = c.get("/login?next=//evil.example/")
        assert 'value="//evil.example/"' not in r.text


def test_a_read_token_sees_everything_and_may_do_nothing(site, driver):
    viewer = site.api.CreateAccessToken(ac.AccessTokenSpec(name="wall-screen", scope="read")).token
    try:
        login(driver, site, viewer)
        wait(driver, lambda d: d.current_url.rstrip("/") == site.url, what="the overview after a read login")
        assert "wall-screen · read" in driver.find_element(By.CSS_SELECTOR, ".who").text
        for path in ("/", "/nodes/fog-1", "/apps/aggregate", "/models/congestion", "/services/congestion"):
            html = visit(driver, site, path)
            assert driver.find_elements(By.CSS_SELECTOR, "#run-now, #drain, #retrain, button.pin, #unpin") == [], path
            assert viewer not in html and viewer.rsplit(".", 1)[-1] not in html
        csrf = csrf_of(driver.page_source)
        session = driver.get_cookie("stratum_session")["value"]
        runs, pinned = len(runs_of(site, "aggregate")), site.api.GetModel(m.GetModelRequest(name="congestion")).spec.pinned_version
        with http(site, {"stratum_session": session}) as c:
            for path, form in (("/apps/aggregate/run", {}), ("/models/congestion/pin", {"version": ""}),
                               ("/models/congestion/retrain", {}), ("/nodes/fog-1/drain", {"drain": "1"})):
                r = c.post(path, data={"csrf": csrf, **form})
                assert r.status_code == 403 and "wall-screen holds a read token, which may not act" in r.text, (path, r.text)
        assert len(runs_of(site, "aggregate")) == runs
        assert site.api.GetModel(m.GetModelRequest(name="congestion")).spec.pinned_version == pinned
        assert not site.api.nodes()["fog-1"].drain
    finally:
        site.api.DeleteAccessToken(ac.DeleteAccessTokenRequest(name="wall-screen"))
    # Revoked: the next page sends the browser to the login page.
    driver.get(site.url + "/nodes")
    wait(driver, lambda d: "/login" in d.current_url, what="the login page after the token was revoked")
    assert "session expired" in driver.find_element(By.CSS_SELECTOR, ".flash").text


def test_tls_is_the_control_planes_certificate(site):
    host, port = site.url.removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=site.plane.ca_pem_path)
    with socket.create_connection((host, int(port)), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(ssl.SSLError):  # not a certificate any public CA vouches for
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            ssl.create_default_context().wrap_socket(raw, server_hostname=host).close()


def test_an_expired_session_asks_to_log_in_again(tmp_path, driver):
    plane = ControlPlane(str(tmp_path), ui=True, extra=["--ui-session-ttl", "3s"]).start()
    try:
        driver.get(plane.ui_url + "/login")
        driver.find_element(By.ID, "token").send_keys(plane.admin_token)
        driver.find_element(By.ID, "login").click()
        wait(driver, lambda d: d.find_elements(By.ID, "counts"), what="the overview")
        time.sleep(3.5)
        driver.get(plane.ui_url + "/nodes")
        wait(driver, lambda d: "/login" in d.current_url, what="the login page")
        assert driver.find_element(By.CSS_SELECTOR, ".flash").text == "Your session expired: log in again."
        assert "next=%2Fnodes" in driver.current_url
    finally:
        plane.stop()
