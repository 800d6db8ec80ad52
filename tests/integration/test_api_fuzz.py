"""Property-based fuzzing of the served OpenAPI document with schemathesis: valid and invalid
requests for every operation, and not one answer may be a server error. The API runs in
dev mode (auth disabled) so that every request reaches its handler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.integration.test_api_support import ApiServer, start_api
from tests.support.stack import Stack

EXAMPLES_PER_OPERATION = 30
DEV_MODE = {"FLOWBUS_API__AUTH__ENABLED": "false"}
ORDERS = {
    "id": "fuzz-orders",
    "triggers": [{"topic": "orders", "type": "order.created"}],
    "inputSchema": {"type": "object", "required": ["orderId"]},
    "steps": [{"id": "note", "type": "action", "action": "log", "config": {"message": "hi"}}],
}


@pytest_asyncio.fixture(scope="module")
async def api(stack: Stack) -> AsyncIterator[ApiServer]:
    deployment = await stack.deployment("fuzz", [ORDERS])
    server = await start_api(deployment, DEV_MODE)
    try:
        yield server
    finally:
        server.stop()


async def test_dev_mode_lets_requests_in_without_a_token(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        listed = await client.get("/v1/definitions")
        started = await client.post(
            "/v1/instances", json={"workflowId": "fuzz-orders", "input": {"orderId": "x"}}
        )

    assert listed.status_code == 200
    assert started.status_code == 202


def fuzz(base_url: str) -> list[str]:
    """Run every operation's examples; return a description of each server error."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "GET" and operation.path.endswith("/events"):
            continue  # live streams never end by themselves; test_api.py covers them
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def no_server_error(case: Any) -> None:
            response = case.call(base_url=base_url, timeout=10)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300} -> "
                    f"{response.status_code} {response.content[:300]!r}"
                )

        no_server_error()
    return failures


async def test_no_generated_request_gets_a_server_error(api: ApiServer) -> None:
    failures = await asyncio.to_thread(fuzz, api.url)

    assert failures == [], "\n".join(failures)
    assert "api.unexpected_error" not in api.log_text()
