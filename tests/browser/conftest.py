"""The console in a real browser: Debian's chromium driven by Playwright, against the embedded system.

The system runs as its own process (`python -m crm embedded`), so the browser talks to it exactly as a user's
would; data is seeded through the public HTTP API only. Chromium must be installed (scripts/lib/chromium.sh
does it for ./scripts/test): without it these tests fail, they never skip.

Playwright's async API on one event loop for the session: tests/conftest.py monkey-patches the process for
eventlet, under which the sync API's greenlet dispatch stops hearing the browser's events (wait_for_url and
the like never return); the async API runs on plain asyncio and works. Tests here are `async def`, run by
pytest_pyfunc_call below; API calls go through Playwright's HTTP client.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest

from crm_common.auth import issue_token

LOOP = asyncio.new_event_loop()
TEST_TIMEOUT = 90


def run(awaitable):
    return LOOP.run_until_complete(asyncio.wait_for(awaitable, TEST_TIMEOUT))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        run(pyfuncitem.obj(**args))
        return True
    return None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "console-test-pass-1"
REPS = [  # id, name, role, team
    ("mgr-north", "Mia North", "manager", "north"),
    ("rep-n1", "Ravi Nair", "rep", "north"),
    ("rep-n2", "Nora Lind", "rep", "north"),
    ("rep-n3", "Otto Berg", "rep", "north"),
    ("rep-s1", "Sara Sol", "rep", "south"),
]


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """Plain HTTP calls to the system under test, as any client would make them."""

    def __init__(self, http, base_url: str, secret: str):
        self.http, self.base_url, self.secret = http, base_url, secret
        self.roles = {"admin": ("admin", None)}

    def token(self, user: str) -> str:
        role, team = self.roles[user]
        return issue_token(self.secret, user, role, team, 3600)

    async def call(self, method: str, path: str, body=None, user: str = "admin", expect=(200, 201, 202)):
        response = await self.http.fetch(self.base_url + path, method=method, timeout=30000,
                                   data=json.dumps(body) if body is not None else None,
                                   headers={"Authorization": f"Bearer {self.token(user)}", "Content-Type": "application/json"})
        status, raw = response.status, await response.body()
        payload = json.loads(raw) if raw and raw[:1] in b"{[" else raw
        if expect and status not in expect:
            raise AssertionError(f"{method} {path} as {user}: {status} {payload}")
        return payload

    async def get(self, path, user="admin", **params):
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return await self.call("GET", f"{path}?{query}" if query else path, user=user)

    async def wait_for(self, what: str, check, timeout: float = 30.0):
        """Events reach the other services' read models within moments: poll until check() holds."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await check()
            if last:
                return last
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def playwright():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: run them through ./scripts/test, which "
                    "installs it (scripts/lib/chromium.sh), or apt-get install chromium, or set CRM_CHROMIUM", pytrace=False)
    from playwright.async_api import async_playwright
    started = run(async_playwright().start())
    yield started
    run(started.stop())


@pytest.fixture(scope="session")
def crm(tmp_path_factory, playwright):
    """`python -m crm embedded` on a free port with its own secret and data folder."""
    data_dir = tmp_path_factory.mktemp("crm-data")
    port = _free_port()
    secret = secrets.token_urlsafe(36)
    env = {**os.environ, "CRM_AUTH_SECRET": secret, "CRM_BOOTSTRAP_ADMIN": "admin", "PYTHONUNBUFFERED": "1"}
    log = open(data_dir / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "crm", "embedded", "--port", str(port), "--data-dir", str(data_dir)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    http = run(playwright.request.new_context())
    api = Api(http, f"http://127.0.0.1:{port}", secret)
    deadline = time.monotonic() + 60
    while True:
        try:
            if run(http.get(api.base_url + "/health", timeout=2000)).status == 200:
                break
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the embedded system did not start; see {data_dir / 'server.log'}:\n"
                                 + (data_dir / "server.log").read_text()[-3000:])
        time.sleep(0.3)
    yield api
    run(http.dispose())
    process.send_signal(signal.SIGINT)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def _iso(days_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days_ago)).isoformat()


@pytest.fixture(scope="session")
def world(crm):
    """Reps of two teams with passwords, their customers with history, tasks due today and churn alerts."""
    return run(_seed(crm))


async def _seed(crm):
    for rep_id, name, role, team in REPS:
        await crm.call("POST", "/v1/reps", {"id": rep_id, "name": name, "role": role, "team": team,
                                      "email": f"{rep_id}@example.com", "manager_id": "mgr-north" if team == "north" and role == "rep" else None})
        crm.roles[rep_id] = (role, team)
    for user in ["admin"] + [r[0] for r in REPS]:
        await crm.call("PUT", f"/v1/reps/{user}/password", {"password": PASSWORD})

    async def customer(company, owner, purchases=(), stages=(), created_days_ago=400):
        body = {"customer": {"company": company, "owner_id": owner, "industry": "retail", "created_at": _iso(created_days_ago),
                             "contacts": [{"name": f"{company.split()[0]} Boss", "role": "CEO", "is_decision_maker": True},
                                          {"name": f"{company.split()[0]} Buyer", "role": "Buyer"}]},
                "stages": [{"stage": stage, "changed_at": _iso(days)} for stage, days in stages],
                "purchases": [{"amount": amount, "currency": "USD", "purchased_at": _iso(days)} for amount, days in purchases]}
        return (await crm.call("POST", "/v1/customers/import", body))["id"]

    ids = {
        "northwind": await customer("Northwind Trading", "rep-n1", [("60000", 300), ("55000", 200), ("70000", 20)],
                              [("needs_analysis", 390), ("proposal", 350), ("won", 300)]),
        "harbor": await customer("Harbor Foods", "rep-n1", [("30000", 240)], [("needs_analysis", 300), ("won", 240)]),
        "pine": await customer("Pine Studio", "rep-n1", (), [("needs_analysis", 10)], created_days_ago=20),
        "lakeside": await customer("Lakeside Dental", "rep-n2", [("8000", 100)], [("won", 100)]),
        "quarry": await customer("Quarry Tools", "rep-n3", [("5000", 50)], [("won", 50)]),
        "southern": await customer("Southern Cross Ltd", "rep-s1", [("90000", 30), ("40000", 10)], [("won", 30)]),
    }
    # two tasks due now for rep-n1 beside whatever the cadence schedules: one to log, one to skip
    due = _iso(0.01)
    tasks = {
        "renewal": (await crm.call("POST", "/v1/tasks", {"customer_id": ids["pine"], "purpose": "Call about the renewal offer",
                                                   "due_at": due, "assignee_id": "rep-n1"}))["id"],
        "visit": (await crm.call("POST", "/v1/tasks", {"customer_id": ids["harbor"], "purpose": "Plan a site visit",
                                                 "due_at": due, "assignee_id": "rep-n1"}))["id"],
    }
    async def listed():
        return {tasks["renewal"], tasks["visit"]} <= {t["id"] for t in (await crm.get("/v1/worklist", user="rep-n1"))["items"]}

    async def queued():
        return (await crm.get("/v1/alert-queue", user="mgr-north"))["customers"] > 0

    async def reported():
        return (await crm.get("/v1/reports/distribution", dimension="tier"))["total"] == len(ids)

    await crm.wait_for("rep-n1's work list", listed)
    await crm.call("POST", "/v1/alerts/sweep", {})
    await crm.wait_for("the north alert queue", queued)
    await crm.wait_for("the reports read models", reported)
    return {"customers": ids, "tasks": tasks}


@pytest.fixture(scope="session")
def browser(playwright):
    chromium = run(playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]))
    yield chromium
    run(chromium.close())


@pytest.fixture(scope="session")
def password():
    """Every seeded user's password."""
    return PASSWORD


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """Where the screenshots of every screen go (the test run's output folder)."""
    return tmp_path_factory.mktemp("screens")


@pytest.fixture
def open_console(browser, crm, world, shots):
    """await open_console(user, locale) -> a page signed in through the sign-in form; await page.shot(name) saves
    a screenshot of the whole page."""
    contexts = []

    async def make(user, locale="en-US", sign_in=True):
        context = await browser.new_context(locale=locale, viewport={"width": 1280, "height": 900}, accept_downloads=True)
        contexts.append(context)
        page = await context.new_page()
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.js_errors = errors
        page.set_default_timeout(10000)
        page.shot = lambda name: page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        await page.goto(crm.base_url + "/")
        await page.wait_for_url("**/signin**")
        if sign_in:
            await page.locator("input[name=user]").fill(user)
            await page.locator("input[name=password]").fill(PASSWORD)
            await page.locator("form button[type=submit]").first.click()
            await page.wait_for_selector("[data-testid=who]")
        return page

    yield make
    try:
        for context in contexts:
            for page in context.pages:
                assert not page.js_errors, f"errors in the page: {page.js_errors}"
    finally:
        for context in contexts:
            run(context.close())
