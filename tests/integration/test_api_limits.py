"""Hostile requests against a real `flowbus api` process: bodies too large or too deep, bodies
that lie about their length or trickle in, values that cannot be stored, and a SIGTERM while
a live stream is open. Every refusal is a prompt 4xx problem document; the process stays
responsive and stops when told."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from openapi_spec_validator import validate

from tests.integration.test_api_support import ApiServer, end_offsets, problem, start_api
from tests.support.stack import Deployment, Stack

REQUEST_TIMEOUT = 2.0
ENV = {
    "FLOWBUS_API__AUTH__ENABLED": "false",
    "FLOWBUS_LIMITS__REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
    # Smaller than the body limit, so that a body the API takes can still make too large a
    # record.
    "FLOWBUS_LIMITS__MAX_RECORD_BYTES": "200000",
}
ORDERS = {
    "id": "limits-orders",
    "triggers": [{"topic": "orders", "type": "order.created"}],
    "steps": [{"id": "note", "type": "action", "action": "log", "config": {"message": "hi"}}],
}
FIVE_MB = 5 * 1024 * 1024


@pytest_asyncio.fixture(scope="module")
async def deployment(stack: Stack) -> Deployment:
    return await stack.deployment("limits", [ORDERS])


@pytest_asyncio.fixture(scope="module")
async def api(deployment: Deployment) -> AsyncIterator[ApiServer]:
    server = await start_api(deployment, ENV)
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def client(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as opened:
        yield opened


def deep(levels: int) -> bytes:
    return b'{"workflowId": "limits-orders", "input": ' + b"[" * levels + b"]" * levels + b"}"


def raw_exchange(api: ApiServer, head: bytes, body: Iterator[bytes], wait: float = 10) -> bytes:
    """Send a hand-made request over a socket (body in pieces, as a generator paces them) and
    return whatever the API answers."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=wait) as conn:
        conn.sendall(head)
        try:
            for piece in body:
                conn.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-body: the answer is waiting to be read
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: api", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer_status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def answer_problem(answer: bytes) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    document: dict[str, Any] = orjson.loads(body)
    return document


# -- bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/instances", "/v1/definitions", "/v1/events/orders"])
async def test_a_body_5000_deep_is_refused_at_once(
    api: ApiServer, client: httpx.AsyncClient, path: str
) -> None:
    began = time.perf_counter()
    response = await client.post(path, content=deep(5000))
    took = time.perf_counter() - began
    print(f"5,000-deep body to {path} refused in {took * 1000:.1f} ms")

    body = problem(response, 400, "too-deep")
    assert "nested deeper than the limit of 64" in body["detail"]
    assert took < 1.0
    assert (await client.get("/healthz")).status_code == 200
    assert "api.unexpected_error" not in api.log_text()


async def test_a_body_just_within_the_depth_limit_is_taken(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/definitions/validate", content=deep(60))

    assert response.status_code == 200


async def test_a_5_mb_body_is_413_not_a_broker_error(client: httpx.AsyncClient) -> None:
    began = time.perf_counter()
    response = await client.post("/v1/instances", content=b"[" + b"1," * (FIVE_MB // 2) + b"1]")
    took = time.perf_counter() - began
    print(f"5 MB body refused in {took * 1000:.1f} ms")

    body = problem(response, 413, "too-large")
    assert "over the limit of 1000000" in body["detail"]


async def test_a_5_mb_body_without_a_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(FIVE_MB // 65536):
            yield b" " * 65536

    response = await client.post("/v1/instances", content=chunked())

    problem(response, 413, "too-large")


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    api: ApiServer,
) -> None:
    head = request_head("/v1/instances", {"Content-Length": str(FIVE_MB)})

    answer = await asyncio.to_thread(raw_exchange, api, head, iter(()))

    assert answer_status(answer) == 413
    assert answer_problem(answer)["type"].endswith("/too-large")


async def test_a_body_longer_than_its_declared_length_does_not_pass_as_a_request(
    api: ApiServer, client: httpx.AsyncClient
) -> None:
    head = request_head("/v1/definitions/validate", {"Content-Length": "2"})

    answer = await asyncio.to_thread(raw_exchange, api, head, iter([b"{}" + b"x" * 50_000]))

    assert answer_status(answer) == 200  # the declared 2 bytes; the rest is no request
    assert b"HTTP/1.1 5" not in answer
    assert (await client.get("/healthz")).status_code == 200


async def test_a_body_shorter_than_its_declared_length_times_out_with_408(
    api: ApiServer,
) -> None:
    head = request_head("/v1/instances", {"Content-Length": "1000"})

    began = time.perf_counter()
    answer = await asyncio.to_thread(raw_exchange, api, head, iter([b'{"workflowId": ']))
    took = time.perf_counter() - began
    print(f"a body that never arrives answered in {took:.2f} s")

    assert answer_status(answer) == 408
    assert answer_problem(answer)["type"].endswith("/body-timeout")


async def test_a_body_that_trickles_in_times_out_with_408(api: ApiServer) -> None:
    def trickle() -> Iterator[bytes]:
        for _ in range(40):
            yield b" "
            time.sleep(0.25)

    head = request_head("/v1/instances", {"Transfer-Encoding": "chunked"})
    chunks = (b"1\r\n" + piece + b"\r\n" for piece in trickle())

    began = time.perf_counter()
    answer = await asyncio.to_thread(raw_exchange, api, head, chunks)
    took = time.perf_counter() - began
    print(f"a trickling body answered after {took:.2f} s")

    assert answer_status(answer) == 408


async def test_a_command_too_large_for_a_record_is_413_and_nothing_is_published(
    deployment: Deployment, client: httpx.AsyncClient
) -> None:
    commands = deployment.settings.topics.commands
    before = await end_offsets(deployment, commands)

    response = await client.post(
        "/v1/instances", json={"workflowId": "limits-orders", "input": {"note": "x" * 300_000}}
    )

    body = problem(response, 413, "too-large")
    assert "over the limit of 200000" in body["detail"]
    assert await end_offsets(deployment, commands) == before


async def test_a_yaml_alias_bomb_is_413_at_once(client: httpx.AsyncClient) -> None:
    bomb = "id: bomb\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"

    began = time.perf_counter()
    response = await client.post(
        "/v1/definitions", content=bomb, headers={"Content-Type": "application/yaml"}
    )
    took = time.perf_counter() - began

    problem(response, 413, "too-large")
    assert took < 1.0


async def test_a_definition_chaining_thousands_of_steps_is_422(
    api: ApiServer, client: httpx.AsyncClient
) -> None:
    steps = [
        {"id": f"s{i}", "type": "action", "action": "log", "config": {}, "next": f"s{i + 1}"}
        for i in range(3000)
    ]
    steps.append({"id": "s3000", "type": "action", "action": "log", "config": {}})

    response = await client.post("/v1/definitions", json={"id": "limits-chain", "steps": steps})

    assert response.status_code == 422, response.text
    assert "api.unexpected_error" not in api.log_text()


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [{"id": 5, "steps": []}, {"id": {"a": 1}}, {"id": None}])
async def test_a_definition_id_that_is_not_a_string_is_422(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    stored = await client.post("/v1/definitions", json=document)
    replaced = await client.put("/v1/definitions/limits-other", json=document)
    checked = await client.post("/v1/definitions/validate", json=document)

    assert problem(stored, 422, "invalid-definition")["errors"][0]["pointer"] == "#/id"
    problem(replaced, 422, "invalid-definition")
    assert checked.json()["valid"] is False


async def test_nul_in_the_input_is_422_naming_where_and_nothing_is_published(
    deployment: Deployment, client: httpx.AsyncClient
) -> None:
    commands = deployment.settings.topics.commands
    before = await end_offsets(deployment, commands)

    response = await client.post(
        "/v1/instances",
        json={"workflowId": "limits-orders", "input": {"lines": [{"sku": "a\x00b"}]}},
    )

    body = problem(response, 422, "invalid-request")
    assert body["errors"][0]["pointer"] == "#/input"
    assert "input.lines[0].sku holds the NUL character" in body["detail"]
    assert await end_offsets(deployment, commands) == before


async def test_nul_in_a_webhook_body_is_422(
    deployment: Deployment, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"/v1/events/{deployment.topic('orders')}", json={"type": "order.created", "id": "\x00"}
    )

    body = problem(response, 422, "invalid-event")
    assert "id holds the NUL character" in body["detail"]


async def test_nul_in_a_query_filter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/instances", params={"correlationId": "a\x00"})

    assert problem(response, 400, "invalid-request")["errors"][0]["parameter"] == "correlationId"


# -- the contract ------------------------------------------------------------------------


async def test_the_served_openapi_document_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    assert document["openapi"].startswith("3.1.")
    validate(document)


# -- shutdown ----------------------------------------------------------------------------


async def test_sigterm_stops_the_api_within_5_seconds_while_a_stream_is_open(
    deployment: Deployment,
) -> None:
    server = await start_api(deployment, ENV)
    try:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
            client.stream("GET", "/v1/workflows/limits-orders/events") as stream,
        ):
            assert stream.status_code == 200
            await asyncio.sleep(1.0)  # the stream's consumer is up

            began = time.perf_counter()
            server.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(server.process.wait, 30)
            took = time.perf_counter() - began
        print(f"flowbus api stopped {took:.2f} s after SIGTERM with a stream open (exit {code})")

        assert server.process.poll() is not None
        assert took < 5.0
        assert "stream.closed" in server.log_text()
    finally:
        server.stop()
