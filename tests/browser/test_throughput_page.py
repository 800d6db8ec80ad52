"""The throughput page: started, completed and failed per minute, latency percentiles."""

from __future__ import annotations

from tests.browser.conftest import World
from tests.browser.support import Browser


async def test_throughput_and_latency_are_drawn_as_charts(world: World, browser: Browser) -> None:
    instance_id = await world.start("quick-order", {"orderId": "chart-1"})
    await world.instance(instance_id, "completed")

    browser.open("/ui/throughput?minutes=15")

    browser.find('#counts-chart[data-drawn="true"] canvas')
    browser.find('#latency-chart[data-drawn="true"] canvas')
    assert int(browser.read('[data-total="completed"]')) >= 1
    browser.screenshot_full("11-throughput")
