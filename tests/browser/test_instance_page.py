"""The instance page: graph with the path taken, timeline, children and parent, live
updates, the operator's actions, and seed 004's uiComponents."""

from __future__ import annotations

import uuid

from tests.browser.conftest import World
from tests.browser.support import Browser
from tests.browser.workflows import HANG_SECONDS


async def test_an_instance_shows_its_graph_timeline_and_child_and_goes_on_live(
    world: World, browser: Browser
) -> None:
    order = f"o-{uuid.uuid4().hex[:8]}"
    instance_id = await world.start("order-fulfilment", {"orderId": order, "amount": 20})
    await world.waiting_in(instance_id, "await-payment")

    browser.open(f"/ui/instances/{instance_id}")
    browser.live("#instance-live")
    browser.mark_page()
    assert "await-payment" in browser.read('#instance-graph[data-drawn="true"] svg')
    timeline = browser.text_of(".timeline-table")
    for step in ("check-amount", "reserve-stock", "await-payment"):
        assert step in timeline
    assert "stock-reservation" in browser.read("[data-child]")
    child_id = browser.read("[data-child]", "data-child")
    browser.screenshot_full("04-instance-waiting")

    await world.publish(
        "payments", {"type": "payment.received", "order_id": order, "amount": 20}, key=order
    )

    browser.wait_text("#instance-status", "completed")
    browser.wait_text("#events", "instance.completed")
    assert browser.same_page()
    assert browser.read('tr[data-step="confirm"]', "data-step-status") == "completed"
    browser.graph_drawn("#instance-graph")
    browser.screenshot_full("05-instance")
    browser.open(f"/ui/instances/{child_id}")
    assert browser.read("[data-parent]", "data-parent") == instance_id


async def test_an_instance_is_cancelled_with_compensation_from_its_page(
    world: World, browser: Browser
) -> None:
    instance_id = await world.start("saga-order", {"orderId": f"s-{uuid.uuid4().hex[:8]}"})
    await world.waiting_in(instance_id, "await-payment")
    browser.open(f"/ui/instances/{instance_id}")

    browser.fill("#cancel-reason", "customer changed their mind")
    browser.click('[data-action="cancel-compensate"]')

    browser.wait_text(".banner.ok", "Cancel sent")
    browser.wait_text("#instance-status", "compensated")
    body = await world.instance(instance_id)
    assert body["status"] == "compensated"
    assert browser.read('tr[data-step="reserve"]', "data-step-status") == "compensated"


async def test_seed_004_ui_components_show_progress_while_running_and_a_summary_when_done(
    world: World, browser: Browser
) -> None:
    order = f"p-{uuid.uuid4().hex[:8]}"
    instance_id = await world.start("ui-progress", {"orderId": order})
    browser.open(f"/ui/instances/{instance_id}")

    progress = browser.read('[data-component="workflow-progress"][data-layout="timeline"]')
    assert "Current Progress" in progress
    assert not browser.all('[data-component="workflow-summary"]')
    browser.screenshot_full("06-instance-ui-components-running")

    summary = browser.read(
        '[data-component="workflow-summary"][data-layout="card"]', timeout=HANG_SECONDS + 45
    )
    assert "Workflow Summary" in summary
    assert order in summary
    assert not browser.all('[data-component="workflow-progress"]')
    assert not browser.all('[data-component="error-view"]')
    browser.screenshot_full("07-instance-ui-components-completed")
