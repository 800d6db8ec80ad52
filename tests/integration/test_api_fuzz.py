"""Property-based fuzzing of the served OpenAPI document with schemathesis: valid and invalid
requests for every operation, and not one answer may be a server error or fail to come in
time. The API runs in dev mode (auth disabled) so that every request reaches its handler,
with a time limit well under the client's, so that a hung request shows as a 504."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.integration.test_api_support import ApiServer, start_api
from tests.support.stack import Stack

EXAMPLES_PER_OPERATION = 30
CLIENT_TIMEOUT = 10.0
DEV_MODE = {"FLOWBUS_API__AUTH__ENABLED": "false", "FLOWBUS_LIMITS__REQUEST_TIMEOUT": "5"}
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


def answer(case: Any, base_url: str) -> str | None:
    """What is wrong with the API's answer to `case`, if anything. A live stream that opens
    is closed once its head has come: it would not end by itself."""
    try:
        with requests.request(
            **case.as_transport_kwargs(base_url=base_url), stream=True, timeout=CLIENT_TIMEOUT
        ) as response:
            opened = response.headers.get("content-type", "").startswith("text/event-stream")
            content = b"" if opened and response.ok else response.content
    except requests.RequestException as exc:
        return f"no answer: {exc!r:.300}"
    if response.status_code >= 500:
        return f"{response.status_code} {content[:300]!r}"
    return None


def fuzz(base_url: str) -> tuple[list[str], set[str]]:
    """Run every operation's examples; return a description of each failure, and the
    operations exercised."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    exercised: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
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
            exercised.add(f"{case.method.upper()} {case.path}")
            wrong = answer(case, base_url)
            if wrong is not None:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300} -> "
                    + wrong
                )

        no_server_error()
    return failures, exercised


async def test_no_generated_request_gets_a_server_error_or_no_answer(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        document = (await client.get("/openapi.json")).json()
    every = {
        f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops
    }

    failures, exercised = await asyncio.to_thread(fuzz, api.url)

    assert failures == [], "\n".join(failures)
    assert exercised == every
    assert "api.unexpected_error" not in api.log_text()
