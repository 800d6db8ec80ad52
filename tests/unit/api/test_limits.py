"""The bounds every API request is held to before a route runs: body size, nesting depth and
time; each answered with a problem document."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import yaml
from starlette.types import Message, Receive, Scope, Send

from flowbus.api.limits import DRAIN_BYTES, BodyLimit, TimeLimit, check_expanded
from flowbus.limits import JsonLimits, LimitExceeded

LIMITS = JsonLimits(max_bytes=10_000, max_depth=8)


class Route:
    """An ASGI app that reads its whole body and echoes it after `delay` seconds; or, as a
    live stream, echoes it at once and sends one more event after `delay` seconds."""

    def __init__(self, delay: float = 0, stream: bool = False) -> None:
        self.delay = delay
        self.stream = stream
        self.received: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.received = body
        if not self.stream:
            await asyncio.sleep(self.delay)
        media = b"text/event-stream" if self.stream else b"application/json"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", media)]}
        )
        await send({"type": "http.response.body", "body": body, "more_body": self.stream})
        if self.stream:
            await asyncio.sleep(self.delay)
            await send({"type": "http.response.body", "body": b"data: late\n\n"})


class Client:
    """Sends one request to an ASGI app, body in `chunks`; records what it reads and gets."""

    def __init__(self, chunks: list[bytes], content_length: int | None = None, stall: bool = False):
        self.chunks = chunks
        self.stall = stall
        self.reads = 0
        self.reads_before_answer: int | None = None
        self.sent: list[Message] = []
        headers = [(b"content-type", b"application/json")]
        if content_length is not None:
            headers.append((b"content-length", str(content_length).encode()))
        self.scope: Scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/instances",
            "headers": headers,
            "query_string": b"",
        }

    async def receive(self) -> Message:
        self.reads += 1
        if self.reads <= len(self.chunks):
            more = self.reads < len(self.chunks) or self.stall
            return {"type": "http.request", "body": self.chunks[self.reads - 1], "more_body": more}
        await asyncio.sleep(3600)  # a client that sends no more
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        if self.reads_before_answer is None:
            self.reads_before_answer = self.reads
        self.sent.append(message)

    async def call(self, app: Any) -> None:
        await app(self.scope, self.receive, self.send)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def ended(self) -> bool:
        return not self.sent[-1].get("more_body", False)

    @property
    def problem(self) -> dict[str, Any]:
        headers = dict(self.sent[0]["headers"])
        assert headers[b"content-type"] == b"application/problem+json"
        body: dict[str, Any] = orjson.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))
        return body


async def test_a_declared_length_over_the_limit_is_413_before_anything_is_read() -> None:
    route = Route()
    client = Client([b"x" * 100], content_length=50_000)

    await client.call(BodyLimit(route, LIMITS))

    assert client.status == 413
    assert client.problem["type"].endswith("/too-large")
    assert client.reads_before_answer == 0
    assert route.received is None


async def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    route = Route()
    client = Client([b"x" * 4000] * 10)

    await client.call(BodyLimit(route, LIMITS))

    assert client.status == 413
    assert client.problem["status"] == 413
    assert client.reads_before_answer == 3
    assert route.received is None


async def test_the_rest_of_a_refused_body_is_dropped_so_that_the_client_reads_the_answer() -> None:
    client = Client([b"x" * 4000] * 10)

    await client.call(BodyLimit(Route(), LIMITS))

    assert client.reads == 10
    assert client.ended


async def test_a_declared_length_too_large_to_drop_is_not_read_at_all() -> None:
    client = Client([b"x" * 100], content_length=DRAIN_BYTES + 1)

    await client.call(BodyLimit(Route(), LIMITS))

    assert client.status == 413
    assert client.reads == 0
    assert client.ended


async def test_a_body_that_outgrows_its_declared_length_is_refused_too() -> None:
    client = Client([b"x" * 4000] * 10, content_length=100)

    await client.call(BodyLimit(Route(), LIMITS))

    assert client.status == 413


async def test_a_body_nested_deeper_than_the_limit_is_400_and_never_parsed() -> None:
    route = Route()
    client = Client([b"[" * 5000 + b"]" * 5000])

    await client.call(BodyLimit(route, JsonLimits(max_bytes=1_000_000, max_depth=8)))

    assert client.status == 400
    assert client.problem["type"].endswith("/too-deep")
    assert "deeper than the limit of 8" in client.problem["detail"]
    assert route.received is None


async def test_a_body_within_the_limits_reaches_the_route_as_sent() -> None:
    route = Route()
    body = orjson.dumps({"workflowId": "w", "input": {"a": [[1, 2], {"b": "[[[["}]}})
    client = Client([body[:10], body[10:]])

    await client.call(BodyLimit(route, LIMITS))

    assert client.status == 200
    assert route.received == body


async def test_a_request_not_answered_in_time_is_504() -> None:
    client = Client([b"{}"])

    await client.call(TimeLimit(Route(delay=5), seconds=0.2))

    assert client.status == 504
    assert client.problem["type"].endswith("/timeout")


async def test_a_body_that_does_not_arrive_in_time_is_408() -> None:
    client = Client([b'{"a": '], stall=True)

    await client.call(TimeLimit(BodyLimit(Route(), LIMITS), seconds=0.2))

    assert client.status == 408
    assert client.problem["type"].endswith("/body-timeout")


async def test_a_live_stream_is_not_cut_off_once_it_has_started() -> None:
    client = Client([b""])

    await client.call(TimeLimit(Route(delay=0.3, stream=True), seconds=0.2))

    assert client.status == 200
    assert client.sent[-1]["body"] == b"data: late\n\n"


def yaml_document(text: str) -> Any:
    return yaml.safe_load(text)


def test_yaml_aliases_are_counted_as_often_as_they_are_used() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"

    with pytest.raises(LimitExceeded) as refused:
        check_expanded(yaml_document(bomb), JsonLimits(max_bytes=1_000_000, max_depth=64))

    assert refused.value.kind == "size"


def test_block_style_yaml_nesting_counts_as_depth() -> None:
    nested = "".join(f"{'  ' * level}k:\n" for level in range(20)) + "  " * 20 + "k: 1\n"

    with pytest.raises(LimitExceeded) as refused:
        check_expanded(yaml_document(nested), LIMITS)

    assert refused.value.kind == "depth"


def test_a_shared_node_used_deeper_down_counts_at_its_deepest_use() -> None:
    shared = yaml_document("a: &s [[[1]]]\nb: [[[[[[*s]]]]]]\n")

    with pytest.raises(LimitExceeded) as refused:
        check_expanded(shared, LIMITS)

    assert refused.value.kind == "depth"


def test_an_ordinary_yaml_definition_is_within_the_limits() -> None:
    document = yaml_document(
        "id: orders\nsteps:\n  - id: a\n    type: action\n    action: log\n"
        "    config: &c {message: hi}\n  - {id: b, type: action, action: log, config: *c}\n"
    )

    check_expanded(document, LIMITS)
