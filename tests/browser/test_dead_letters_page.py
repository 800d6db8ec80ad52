"""The dead letters page: what could not be used, why, and replaying it."""

from __future__ import annotations

import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import World
from tests.browser.support import Browser
from tests.browser.workflows import LATE


def row_about(driver: WebDriver, text: str) -> tuple[str, str] | None:
    """The id and text of the dead letter whose row mentions `text`."""
    for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-dead-letter]"):
        if text in row.text:
            return str(row.get_attribute("data-dead-letter")), row.text
    return None


async def test_a_dead_letter_is_replayed_from_the_page_once_it_can_succeed(
    world: World, browser: Browser
) -> None:
    instance_id = str(uuid.uuid4())
    command = {"command": "start", "workflowId": LATE["id"], "instanceId": instance_id}
    await world.d.publish(world.d.settings.topics.commands, [command], key=instance_id)
    browser.open("/ui/dead-letters")
    dead_letter, reason = browser.wait(lambda d: row_about(d, instance_id))
    assert "no active version of workflow 'late-workflow'" in reason
    stored = await world.client.post("/v1/definitions", json=LATE, headers=world.headers())
    assert stored.status_code == 201, stored.text
    # Once an instance of it runs, the worker knows the workflow the command named.
    await world.instance(await world.start(LATE["id"], {}), "completed", timeout=90)

    browser.click(f'[data-replay="{dead_letter}"]')

    browser.wait_text(".banner.ok", f"Dead letter {dead_letter}")
    browser.find(f'tr[data-dead-letter="{dead_letter}"] [data-replayed]')
    body = await world.instance(instance_id, "completed")
    assert body["workflowId"] == LATE["id"]
    browser.screenshot_full("10-dead-letters")
