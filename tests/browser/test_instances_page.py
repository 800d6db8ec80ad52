"""The instances page: a filtered, paged list that follows the instances live."""

from __future__ import annotations

import uuid

from tests.browser.conftest import World
from tests.browser.support import Browser


async def test_a_published_event_appears_and_completes_without_a_reload(
    world: World, browser: Browser
) -> None:
    browser.open("/ui/instances?workflowId=quick-order")
    browser.live()
    browser.mark_page()
    order = f"live-{uuid.uuid4().hex[:8]}"

    await world.publish("orders", {"type": "quick.created", "orderId": order}, key=order)

    browser.wait_text("tr[data-instance]", order)
    browser.wait_text('tr[data-status="completed"]', order)
    assert browser.same_page()
    browser.screenshot_full("03-instances")


async def test_the_list_filters_on_the_server_and_pages_with_cursors(
    world: World, browser: Browser
) -> None:
    batch = f"page-{uuid.uuid4().hex[:6]}"
    ids = [
        await world.start("quick-order", {"orderId": f"{batch}-{n}"}, correlationId=f"{batch}-{n}")
        for n in range(3)
    ]
    for instance_id in ids:
        await world.instance(instance_id, "completed")

    browser.open("/ui/instances?workflowId=quick-order&status=completed&limit=2")
    first = browser.attributes("tr[data-instance]", "data-instance")
    browser.click('a[rel="next"]')
    browser.wait(lambda d: "cursor=" in d.current_url)
    browser.open(browser.driver.current_url.removeprefix(browser.base_url))  # settled
    second = browser.attributes("tr[data-instance]", "data-instance")

    assert len(first) == 2
    assert second
    assert not set(first) & set(second)
    browser.open(f"/ui/instances?correlationId={batch}-1")
    assert browser.attributes("tr[data-instance]", "data-instance") == [ids[1]]


async def test_counts_by_status_are_shown(world: World, browser: Browser) -> None:
    browser.open("/ui/instances")

    assert int(browser.read('[data-count="completed"] strong')) >= 1
