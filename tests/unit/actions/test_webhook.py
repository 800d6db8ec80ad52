"""The `webhook` action against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from pydantic import ValidationError

from flowbus import __version__
from flowbus.actions.base import ActionContext
from flowbus.actions.webhook import Http, Webhook, WebhookConfig
from flowbus.engine.state import ErrorInfo
from flowbus.external.webhook import (
    BODY_LIMIT,
    ERROR_BODY_LIMIT,
    ActionConfigError,
    HttpConnectionError,
    HttpExecutor,
    HttpStatusError,
    HttpTimeoutError,
    WebhookExecutor,
)


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: CIMultiDict[str]
    body: Any


@dataclass
class Answer:
    """What `/answer/<name>` responds with."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200


@dataclass
class Server:
    base: str
    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def context(
    tries: int = 1, *, key: str = "inst-1:notify", max_json_depth: int = 64
) -> ActionContext:
    return ActionContext(
        instance_id="inst-1",
        workflow_id="orders",
        step_id="notify",
        attempt=tries,
        now="2024-05-01T12:00:00Z",
        idempotency_key=key,
        new_event_id=lambda: "evt-1",
        tries=tries,
        max_json_depth=max_json_depth,
    )


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    recorded: list[Seen] = []
    answers: dict[str, Answer] = {}

    async def record(request: web.Request) -> None:
        body = await request.json() if request.can_read_body else None
        query: dict[str, list[str]] = {}
        for name, value in request.query.items():
            query.setdefault(name, []).append(value)
        recorded.append(Seen(request.method, request.path, query, request.headers.copy(), body))

    async def echo(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"received": recorded[-1].body})

    async def status(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text="try later")

    async def created(request: web.Request) -> web.Response:
        return web.json_response(
            {"id": 7},
            status=201,
            headers={"Location": "/orders/7", "X-Session-Token": "server-secret"},
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="too late")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="x" * (BODY_LIMIT + 1000))

    async def answer(request: web.Request) -> web.Response:
        scripted = answers[request.match_info["name"]]
        return web.Response(
            body=scripted.body,
            status=scripted.status,
            headers={"Content-Type": scripted.content_type},
        )

    async def cookie(request: web.Request) -> web.Response:
        response = web.Response(text="here is a cookie")
        response.set_cookie("session", "abc")
        return response

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_post("/created", created)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/cookie", cookie)
    app.router.add_route("*", "/answer/{name}", answer)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Server(base=f"http://{host}:{port}", seen=recorded, answers=answers)
    finally:
        await runner.cleanup()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookExecutor]:
    action = WebhookExecutor()
    yield action
    await action.aclose()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that is bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


async def test_posts_json_body_and_returns_status_and_body(
    server: Server, webhook: WebhookExecutor
) -> None:
    output = await webhook.run({"url": server.url("/echo"), "body": {"orderId": 42}}, context())

    assert server.seen[0].method == "POST"
    assert server.seen[0].body == {"orderId": 42}
    assert output == {
        "status": 200,
        "headers": {"content-type": "application/json; charset=utf-8"},
        "body": {"received": {"orderId": 42}},
    }


async def test_output_headers_are_only_content_type_and_location(
    server: Server, webhook: WebhookExecutor
) -> None:
    output = await webhook.run({"url": server.url("/created")}, context())

    assert output["status"] == 201
    assert output["headers"] == {
        "content-type": "application/json; charset=utf-8",
        "location": "/orders/7",
    }


async def test_sends_the_idempotency_key_of_the_context(
    server: Server, webhook: WebhookExecutor
) -> None:
    await webhook.run({"url": server.url("/echo")}, context())

    assert server.seen[0].headers["Idempotency-Key"] == "inst-1:notify"


async def test_a_repeated_run_of_one_attempt_sends_the_same_key_and_attempt(
    server: Server, webhook: WebhookExecutor
) -> None:
    config = {"url": server.url("/echo"), "body": {"n": 1}}

    await webhook.run(config, context(1))
    await webhook.run(config, context(1))

    sent = [(s.headers["Idempotency-Key"], s.headers["Flowbus-Attempt"]) for s in server.seen]
    assert sent == [("inst-1:notify", "1"), ("inst-1:notify", "1")]


async def test_retries_send_the_same_key_by_default_and_the_attempt_in_its_own_header(
    server: Server, webhook: WebhookExecutor
) -> None:
    for tries in (1, 2, 3):
        await webhook.run({"url": server.url("/echo")}, context(tries))

    sent = [(s.headers["Idempotency-Key"], s.headers["Flowbus-Attempt"]) for s in server.seen]
    assert sent == [("inst-1:notify", "1"), ("inst-1:notify", "2"), ("inst-1:notify", "3")]


async def test_the_attempt_form_sends_a_new_key_on_every_retry(
    server: Server, webhook: WebhookExecutor
) -> None:
    config = {"url": server.url("/echo"), "idempotencyKey": "attempt"}

    for tries in (1, 2):
        await webhook.run(config, context(tries))

    sent = [(s.headers["Idempotency-Key"], s.headers["Flowbus-Attempt"]) for s in server.seen]
    assert sent == [("inst-1:notify:attempt-1", "1"), ("inst-1:notify:attempt-2", "2")]


def test_config_refuses_an_unknown_idempotency_key_form() -> None:
    with pytest.raises(ValidationError, match="idempotencyKey"):
        WebhookConfig.model_validate({"url": "https://example.com", "idempotencyKey": "call"})


async def test_an_idempotency_key_in_the_config_replaces_the_engines(
    server: Server, webhook: WebhookExecutor
) -> None:
    config = {"url": server.url("/echo"), "headers": {"idempotency-key": "order-42"}}

    await webhook.run(config, context())

    assert server.seen[0].headers.getall("Idempotency-Key") == ["order-42"]


async def test_sends_config_headers_and_the_flowbus_user_agent(
    server: Server, webhook: WebhookExecutor
) -> None:
    config = {"url": server.url("/echo"), "headers": {"Authorization": "Bearer t0ken"}}

    await webhook.run(config, context())

    assert server.seen[0].headers["Authorization"] == "Bearer t0ken"
    assert server.seen[0].headers["User-Agent"] == f"flowbus/{__version__}"


async def test_non_2xx_raises_http_status_error_with_code_and_status(
    server: Server, webhook: WebhookExecutor
) -> None:
    with pytest.raises(HttpStatusError) as failure:
        await webhook.run({"url": server.url("/status/503")}, context())

    assert failure.value.code == "503"
    assert failure.value.details == {"status": 503, "body": "try later"}


async def test_http_status_error_becomes_the_steps_error_info(
    server: Server, webhook: WebhookExecutor
) -> None:
    with pytest.raises(HttpStatusError) as failure:
        await webhook.run({"url": server.url("/status/503")}, context())

    assert failure.value.to_error_info(step_id="notify") == ErrorInfo(
        type="HttpError",
        message=f"POST {server.url('/status/503')} answered 503, expected 2xx",
        code="503",
        step_id="notify",
        details={"status": 503, "body": "try later"},
    )


async def test_errors_never_carry_header_values(server: Server, webhook: WebhookExecutor) -> None:
    config = {"url": server.url("/status/500"), "headers": {"Authorization": "Bearer t0ken"}}

    with pytest.raises(HttpStatusError) as failure:
        await webhook.run(config, context())

    assert "t0ken" not in repr(failure.value.to_error_info())


async def test_expect_status_accepts_a_non_2xx_code(
    server: Server, webhook: WebhookExecutor
) -> None:
    config = {"url": server.url("/status/409"), "expectStatus": [200, 409]}

    output = await webhook.run(config, context())

    assert output["status"] == 409


async def test_expect_status_refuses_a_2xx_code_it_does_not_list(
    server: Server, webhook: WebhookExecutor
) -> None:
    config = {"url": server.url("/status/200"), "expectStatus": [202]}

    with pytest.raises(HttpStatusError) as failure:
        await webhook.run(config, context())

    assert failure.value.code == "200"


async def test_a_slow_server_raises_http_timeout_error(
    server: Server, webhook: WebhookExecutor
) -> None:
    config = {"url": server.url("/slow"), "method": "GET", "timeout": 0.2}

    with pytest.raises(HttpTimeoutError) as failure:
        await webhook.run(config, context())

    assert failure.value.to_error_info().type == "TimeoutError"


async def test_a_refused_connection_raises_http_connection_error(
    refused_url: str, webhook: WebhookExecutor
) -> None:
    with pytest.raises(HttpConnectionError) as failure:
        await webhook.run({"url": refused_url}, context())

    assert failure.value.to_error_info().type == "ConnectionError"


async def test_get_sends_query_parameters_merged_over_the_urls(
    server: Server, webhook: WebhookExecutor
) -> None:
    config = {
        "url": server.url("/echo?source=flowbus"),
        "method": "GET",
        "query": {"orderId": 42, "tag": ["a", "b"]},
    }

    await webhook.run(config, context())

    assert server.seen[0].method == "GET"
    assert server.seen[0].query == {"source": ["flowbus"], "orderId": ["42"], "tag": ["a", "b"]}
    assert server.seen[0].body is None


async def test_a_long_text_body_is_truncated_and_marked(
    server: Server, webhook: WebhookExecutor
) -> None:
    output = await webhook.run({"url": server.url("/big"), "method": "GET"}, context())

    assert output["body"] == "x" * BODY_LIMIT
    assert output["bodyTruncated"] is True


async def test_a_body_within_the_limit_carries_no_truncation_marker(
    server: Server, webhook: WebhookExecutor
) -> None:
    server.answers["fits"] = Answer(b"x" * BODY_LIMIT, "text/plain; charset=utf-8")

    output = await webhook.run({"url": server.url("/answer/fits")}, context())

    assert output == {
        "status": 200,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": "x" * BODY_LIMIT,
    }


async def test_a_truncated_body_is_cut_on_a_character_boundary(
    server: Server, webhook: WebhookExecutor
) -> None:
    # "é" is two bytes in UTF-8; one leading byte puts a character across the limit.
    server.answers["accents"] = Answer(b"a" + "é".encode() * BODY_LIMIT, "text/plain")

    output = await webhook.run({"url": server.url("/answer/accents")}, context())

    assert output["body"] == "a" + "é" * ((BODY_LIMIT - 1) // 2)
    assert output["bodyTruncated"] is True


async def test_a_long_json_body_is_kept_as_truncated_text(
    server: Server, webhook: WebhookExecutor
) -> None:
    long_json = b'{"items": ["' + b"y" * BODY_LIMIT + b'"]}'
    server.answers["long"] = Answer(long_json)

    output = await webhook.run({"url": server.url("/answer/long")}, context())

    assert output["body"] == long_json[:BODY_LIMIT].decode()
    assert output["bodyTruncated"] is True


async def test_a_long_error_body_is_cut_on_a_character_boundary_and_marked(
    server: Server, webhook: WebhookExecutor
) -> None:
    server.answers["angry"] = Answer("€".encode() * 4096, "text/plain", status=500)

    with pytest.raises(HttpStatusError) as failure:
        await webhook.run({"url": server.url("/answer/angry")}, context())

    assert failure.value.details == {
        "status": 500,
        "body": "€" * (ERROR_BODY_LIMIT // 3),
        "bodyTruncated": True,
    }


async def test_json_nested_deeper_than_the_limit_is_kept_as_text_and_says_why(
    server: Server, webhook: WebhookExecutor
) -> None:
    deep = b"[" * 65 + b"]" * 65
    server.answers["deep"] = Answer(deep)

    output = await webhook.run({"url": server.url("/answer/deep")}, context())

    assert output["body"] == deep.decode()
    assert output["bodyNotParsed"] == "the JSON body is nested deeper than the limit of 64"


async def test_json_depth_follows_the_configured_limit(
    server: Server, webhook: WebhookExecutor
) -> None:
    server.answers["nested"] = Answer(b'{"a": {"b": {"c": 1}}}')

    shallow = await webhook.run({"url": server.url("/answer/nested")}, context(max_json_depth=2))
    deep_enough = await webhook.run(
        {"url": server.url("/answer/nested")}, context(max_json_depth=3)
    )

    assert shallow["body"] == '{"a": {"b": {"c": 1}}}'
    assert "limit of 2" in shallow["bodyNotParsed"]
    assert deep_enough["body"] == {"a": {"b": {"c": 1}}}


async def test_a_hostile_deep_json_body_costs_milliseconds(
    server: Server, webhook: WebhookExecutor
) -> None:
    hostile = b"[" * (BODY_LIMIT // 2) + b"]" * (BODY_LIMIT // 2)
    server.answers["hostile"] = Answer(hostile)
    loop = asyncio.get_running_loop()

    started = loop.time()
    output = await webhook.run({"url": server.url("/answer/hostile")}, context())

    assert loop.time() - started < 1.0
    assert output["body"] == hostile.decode()
    assert "nested deeper" in output["bodyNotParsed"]


async def test_invalid_json_is_kept_as_text_and_says_why(
    server: Server, webhook: WebhookExecutor
) -> None:
    server.answers["broken"] = Answer(b'{"ok": tru')

    output = await webhook.run({"url": server.url("/answer/broken")}, context())

    assert output["body"] == '{"ok": tru'
    assert output["bodyNotParsed"].startswith("the JSON body is not valid JSON")


async def test_json_holding_nul_is_kept_as_text_that_can_be_stored(
    server: Server, webhook: WebhookExecutor
) -> None:
    server.answers["nul"] = Answer(b'{"name": "a\\u0000b"}')

    output = await webhook.run({"url": server.url("/answer/nul")}, context())

    assert output["body"] == '{"name": "a\\u0000b"}'
    assert "name" in output["bodyNotParsed"]


async def test_nul_in_a_text_body_becomes_the_replacement_character(
    server: Server, webhook: WebhookExecutor
) -> None:
    server.answers["nul-text"] = Answer(b"a\x00b", "text/plain")

    output = await webhook.run({"url": server.url("/answer/nul-text")}, context())

    assert output["body"] == "a\ufffdb"


async def test_cookies_are_not_carried_between_calls(
    server: Server, webhook: WebhookExecutor
) -> None:
    await webhook.run({"url": server.url("/cookie"), "method": "GET"}, context())
    await webhook.run({"url": server.url("/echo")}, context())

    assert "Cookie" not in server.seen[0].headers


async def test_http_is_the_same_action_under_another_name(server: Server) -> None:
    action = HttpExecutor()
    try:
        output = await action.run({"url": server.url("/echo"), "body": [1]}, context())
    finally:
        await action.aclose()

    assert (Http.name, Webhook.name) == ("http", "webhook")
    assert not Http.inline
    assert output["body"] == {"received": [1]}


def test_config_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ValidationError, match="http:// or https://"):
        WebhookConfig.model_validate({"url": "ftp://example.com/file"})


def test_config_refuses_an_unknown_method() -> None:
    with pytest.raises(ValidationError, match="method"):
        WebhookConfig.model_validate({"url": "https://example.com", "method": "TRACE"})


def test_config_accepts_a_url_that_starts_with_a_placeholder() -> None:
    config = WebhookConfig.model_validate({"url": "{{ variables.callbackUrl }}"})

    assert config.url == "{{ variables.callbackUrl }}"


async def test_a_rendered_url_that_is_not_http_raises_action_config_error(
    webhook: WebhookExecutor,
) -> None:
    with pytest.raises(ActionConfigError, match="url"):
        await webhook.run({"url": "file:///etc/passwd"}, context())
