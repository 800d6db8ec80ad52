"""The workflows page: what a newcomer sees first."""

from __future__ import annotations

from tests.browser.conftest import World
from tests.browser.support import Browser


async def test_the_home_page_lists_the_example_workflows_with_their_versions(
    world: World, browser: Browser
) -> None:
    browser.open("/")

    for workflow in ("order-fulfilment", "stock-reservation", "invoice-reminder"):
        card = browser.find(f'[data-workflow="{workflow}"]')
        assert "starts new instances" in card.text
    fulfilment = browser.find('[data-workflow="order-fulfilment"]').text
    assert "Starts on each event on topic" in fulfilment
    assert "order.created" in fulfilment
    browser.screenshot_full("01-workflows")


async def test_a_workflow_page_draws_its_step_graph_and_says_its_triggers(
    world: World, browser: Browser
) -> None:
    browser.open("/ui/workflows/order-fulfilment")

    svg = browser.graph_drawn()
    labels = svg.text
    for step in ("check-amount", "finance-approval", "reserve-stock", "await-payment", "confirm"):
        assert step in labels
    triggers = browser.text_of("ul.triggers")
    assert "order.created" in triggers
    assert "JMESPath" in triggers
    browser.screenshot_full("02-workflow")


async def test_a_version_is_deprecated_and_undeprecated_from_the_page(
    world: World, browser: Browser
) -> None:
    browser.open("/ui/workflows/saga-order")

    browser.click('tr[data-version="1"] form button')
    browser.wait_text(".banner.ok", "Deprecated")
    assert "deprecated" in browser.text_of('tr[data-version="1"]')
    assert "deprecated" in browser.text_of("#start-h + p")
    browser.click('tr[data-version="1"] form button')
    browser.wait_text(".banner.ok", "Undeprecated")
    assert "starts new instances" in browser.text_of('tr[data-version="1"]')


async def test_the_start_form_follows_the_input_schema_and_starts_an_instance(
    world: World, browser: Browser
) -> None:
    browser.open("/ui/workflows/quick-order")
    assert browser.find("#f-amount").get_attribute("type") == "number"
    assert browser.find("#f-express").get_attribute("type") == "checkbox"
    assert browser.find("#f-orderId").get_attribute("required") == "true"

    browser.fill("#f-orderId", "form-1")
    browser.fill("#f-amount", "12.5")
    browser.click("#start-form button[type=submit]")

    browser.wait_text("#instance-status", "completed")
    instance_id = browser.driver.current_url.split("/ui/instances/")[1].split("?")[0]
    body = await world.instance(instance_id, "completed")
    assert body["input"] == {"orderId": "form-1", "amount": 12.5, "express": False}
