"""Browser tests: a real headless Chromium on the dashboard of a real `flowbus api`, with a
real worker on the session's broker and database. Started once for the whole session; the
screenshots the tests take go to one folder, printed at the end of the run."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from flowbus.dashboard.rendering import vendor_missing
from tests.browser.support import CHROMEDRIVER, CHROMIUM, Browser, start_chromium
from tests.browser.workflows import definitions
from tests.integration.test_api_support import AUTH_ENV, ApiServer, start_api, token
from tests.support.stack import Deployment, Stack

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
DECISION_SECRET = "browser-decisions-" + "s" * 32
ENV = {**AUTH_ENV, "FLOWBUS_APPROVALS__HS256_SECRET": DECISION_SECRET}
PERSON = {"subject": "grace", "groups": ["finance"]}


@dataclass
class World:
    """The deployment, its API, and a browser signed in as grace (admin, group finance)."""

    d: Deployment
    api: ApiServer
    browser: Browser
    client: httpx.AsyncClient

    def headers(self, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(*(roles or ('admin',)), **PERSON)}"}

    async def publish(self, topic: str, value: dict[str, Any], key: str | None = None) -> None:
        await self.d.publish(self.d.topic(topic), [value], key=key)

    async def start(self, workflow: str, payload: dict[str, Any], **extra: Any) -> str:
        response = await self.client.post(
            "/v1/instances",
            json={"workflowId": workflow, "input": payload, **extra},
            headers=self.headers("operator"),
        )
        assert response.status_code == 202, response.text
        instance_id: str = response.json()["instanceId"]
        return instance_id

    async def instance(self, instance_id: str, *statuses: str, timeout: float = 45) -> Any:
        """The instance through the API once it exists (and has one of `statuses`)."""
        return await self.instance_when(
            instance_id, lambda body: not statuses or body["status"] in statuses, timeout
        )

    async def waiting_in(self, instance_id: str, step_id: str) -> Any:
        """The instance once `step_id` is among its active steps."""
        return await self.instance_when(
            instance_id, lambda body: step_id in {s["stepId"] for s in body["currentSteps"]}
        )

    async def instance_when(
        self, instance_id: str, check: Callable[[Any], bool], timeout: float = 45
    ) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        body: Any = None
        while asyncio.get_running_loop().time() < deadline:
            response = await self.client.get(
                f"/v1/instances/{instance_id}", headers=self.headers("viewer")
            )
            if response.status_code == 200:
                body = response.json()
                if check(body):
                    return body
            await asyncio.sleep(0.2)
        raise AssertionError(f"instance {instance_id} never got there: {body}")


def _need_the_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        pytest.fail(f"{missing} missing: `make test` installs Debian's chromium + chromium-driver")
    if vendor_missing():
        pytest.fail(f"front-end packages missing ({vendor_missing()}): run `make assets`")


def sign_in(browser: Browser, bearer: str) -> None:
    browser.open("/ui/sign-in")
    browser.find("#token").send_keys(bearer)
    browser.click("form[action='/ui/sign-in'] button[type=submit]")
    browser.find("main h1")


@pytest_asyncio.fixture(scope="session")
async def world(stack: Stack) -> AsyncIterator[World]:
    _need_the_browser()
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    d = await stack.deployment(
        "browser", definitions(), source_topics=("orders", "payments", "records")
    )
    await d.start_worker(extra_env=ENV)
    api = await start_api(d, ENV)
    profile = Path(tempfile.mkdtemp(prefix="flowbus-chromium-"))
    driver = await asyncio.to_thread(start_chromium, profile)
    browser = Browser(driver, api.url, SCREENSHOTS)
    client = httpx.AsyncClient(base_url=api.url, timeout=30)
    world = World(d, api, browser, client)
    try:
        await asyncio.to_thread(sign_in, browser, token("admin", expires_in=3600, **PERSON))
        yield world
    finally:
        await client.aclose()
        await asyncio.to_thread(driver.quit)
        api.stop()
        d.stop_workers()
        shutil.rmtree(profile, ignore_errors=True)
        assert "dashboard.unexpected_error" not in api.log_text(), api.log_text()[-4000:]


@pytest.fixture
def browser(world: World) -> Browser:
    """The signed-in browser, at a normal desktop size."""
    world.browser.driver.set_window_size(1280, 900)
    return world.browser


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.iterdir()):
        count = len(list(SCREENSHOTS.glob("*.png")))
        terminalreporter.write_line(f"dashboard screenshots ({count}): {SCREENSHOTS}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, keep what the browser showed: a screenshot and the page's HTML."""
    report = yield
    browser = item.funcargs.get("browser") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and isinstance(browser, Browser):
        name = f"failed-{item.name}"
        try:
            browser.screenshot(name)
            (SCREENSHOTS / f"{name}.html").write_text(browser.driver.page_source)
        except Exception as exc:  # the browser may be what failed
            report.sections.append(("browser", f"no screenshot: {exc!r}"))
    return report
