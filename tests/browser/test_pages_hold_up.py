"""Every page, whatever is asked of it: no 5xx under the fuzz run, no resource from outside
this server, labels for every control, a keyboard path in, no sideways scrolling at phone
width, and the same roles as the API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.browser.conftest import PERSON, World, sign_in
from tests.browser.support import Browser
from tests.integration import test_api_fuzz
from tests.integration.test_api_fuzz import DEV_MODE, fuzz
from tests.integration.test_api_support import start_api, token

PAGES = (
    "/ui/",
    "/ui/workflows/order-fulfilment",
    "/ui/instances",
    "/ui/approvals",
    "/ui/dead-letters",
    "/ui/throughput",
)

UNLABELLED = """
return [...document.querySelectorAll('input, select, textarea, button')]
  .filter((e) => e.type !== 'hidden')
  .filter((e) => {
    if (e.tagName === 'BUTTON') return !e.textContent.trim() && !e.getAttribute('aria-label');
    if (e.getAttribute('aria-label') || e.closest('label')) return false;
    return !(e.id && document.querySelector('label[for="' + e.id + '"]'));
  })
  .map((e) => e.outerHTML.slice(0, 120));
"""
FOREIGN = """
const here = location.origin;
const used = performance.getEntriesByType('resource').map((e) => e.name);
const linked = [...document.querySelectorAll('script[src], link[href], img[src]')]
  .map((e) => e.src || e.href);
return used.concat(linked).filter((url) => !url.startsWith(here));
"""


async def some_instance(world: World) -> str:
    instance_id = await world.start("quick-order", {"orderId": "look-1"})
    await world.instance(instance_id, "completed")
    return instance_id


async def test_no_page_answers_a_server_error_under_the_fuzz_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_api_fuzz, "EXAMPLES_PER_OPERATION", 12)
    open_api = await start_api(world.d, DEV_MODE)
    try:
        document = (await world.client.get(f"{open_api.url}/ui/openapi.json")).json()
        every = {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}

        failures, exercised = await asyncio.to_thread(fuzz, f"{open_api.url}/ui")
    finally:
        open_api.stop()

    assert failures == [], "\n".join(failures)
    assert exercised == every
    assert "dashboard.unexpected_error" not in open_api.log_text()


async def test_every_page_loads_only_from_this_server_and_labels_its_controls(
    world: World, browser: Browser
) -> None:
    pages = [*PAGES, f"/ui/instances/{await some_instance(world)}"]
    for page in pages:
        browser.open(page)
        browser.find("main h1")
        if page.startswith("/ui/instances/"):
            browser.graph_drawn("#instance-graph")

        foreign: list[Any] = browser.js(FOREIGN)
        unlabelled: list[Any] = browser.js(UNLABELLED)

        assert foreign == [], page
        assert unlabelled == [], page


async def test_the_keyboard_reaches_the_skip_link_first(world: World, browser: Browser) -> None:
    browser.open("/ui/instances")

    browser.js("document.activeElement.blur()")
    browser.find("body").send_keys("\ue004")

    assert browser.js("return document.activeElement.className") == "skip"


async def test_pages_fit_a_phone_without_sideways_scrolling(world: World, browser: Browser) -> None:
    instance = f"/ui/instances/{await some_instance(world)}"
    browser.driver.set_window_size(390, 844)
    try:
        for n, page in enumerate([*PAGES, instance]):
            browser.open(page)
            browser.find("main h1")
            overflow = browser.js(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, page
            if page in ("/ui/", "/ui/instances") or page == instance:
                browser.screenshot(f"12-phone-{n}")
    finally:
        browser.driver.set_window_size(1280, 900)


async def test_a_viewer_sees_but_cannot_act_and_nobody_signed_in_sees_nothing(
    world: World, browser: Browser
) -> None:
    instance_id = await some_instance(world)
    sign_in(browser, token("viewer", expires_in=600, **PERSON))
    try:
        browser.open(f"/ui/instances/{instance_id}")
        browser.find("#instance-status")
        assert not browser.all("#actions-h")
        browser.open("/ui/workflows/saga-order")
        browser.find("#versions-h")
        assert not browser.all("#start-form")
        assert not browser.all("tr[data-version] form")

        browser.click("form[action='/ui/sign-out'] button")
        browser.open("/ui/instances")
        assert "/ui/sign-in" in browser.driver.current_url
        browser.find("#token")
    finally:
        sign_in(browser, token("admin", expires_in=3600, **PERSON))
