"""The approvals inbox: deciding as the signed-in person, and refusals with their reason."""

from __future__ import annotations

import time
import uuid

import jwt

from tests.browser.conftest import World
from tests.browser.support import Browser


async def pending_approval(world: World, order: str) -> dict[str, object]:
    for _ in range(300):
        response = await world.client.get("/v1/approvals/pending", headers=world.headers())
        for item in response.json()["items"]:
            if item.get("summary", {}).get("expense") == order:
                return item  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"no pending approval for {order}")


async def test_approving_from_the_inbox_lets_the_instance_go_on(
    world: World, browser: Browser
) -> None:
    order = f"e-{uuid.uuid4().hex[:8]}"
    await world.publish("orders", {"type": "expense.submitted", "orderId": order, "amount": 80})
    approval = await pending_approval(world, order)
    instance_id = str(approval["instanceId"])

    browser.open("/ui/approvals")
    card = browser.read(f'li[data-instance="{instance_id}"]')
    assert order in card
    assert "0 of 1 approvals" in card
    browser.screenshot_full("08-approvals")
    browser.fill(f'li[data-instance="{instance_id}"] input[name="comment"]', "fine by me")
    browser.click(f'li[data-instance="{instance_id}"] button[data-decision="approve"]')

    assert "approve" in browser.read(f'[data-decided="{instance_id}/manager-approval"]')
    browser.wait_text(f'[data-decided="{instance_id}/manager-approval"]', "fine by me")
    body = await world.instance(instance_id, "completed")
    assert [s["stepId"] for s in body["history"]][-1] == "pay"


async def test_a_forged_decision_shows_as_refused_with_its_reason(
    world: World, browser: Browser
) -> None:
    order = f"e-{uuid.uuid4().hex[:8]}"
    await world.publish("orders", {"type": "expense.submitted", "orderId": order, "amount": 99})
    approval = await pending_approval(world, order)
    instance_id = str(approval["instanceId"])
    browser.open("/ui/approvals")
    browser.live()
    forged = jwt.encode(
        {
            "iss": "flowbus",
            "aud": "flowbus-decisions",
            "sub": "mallory",
            "exp": int(time.time()) + 300,
            "approval_id": approval["approvalId"],
            "decision": "approve",
        },
        "not-the-secret-" + "x" * 32,
        algorithm="HS256",
    )

    await world.d.publish(
        world.d.settings.topics.decisions,
        [{"approvalId": approval["approvalId"], "decision": "approve", "token": forged}],
    )

    card = f'li[data-instance="{instance_id}"]'
    assert "refused" in browser.read(f"{card} [data-refusal]")
    assert browser.read(f"{card} [data-reason]") == "bad signature"
    browser.screenshot_full("09-approvals-refusal")
    assert (await world.instance(instance_id))["status"] == "waiting"
