"""No log line carries a query value, a URL password, a secret field or a header value."""

from __future__ import annotations

import logging

import httpx
import pytest
import structlog

from tests.unit.logging.conftest import LogOutput

URL = "https://api.example.com/v1/orders?api_key=secret-value&page=2"


def test_an_httpx_style_record_keeps_the_query_names_not_the_values(output: LogOutput) -> None:
    output.configure()
    logging.getLogger("httpx").warning(
        'HTTP Request: %s %s "%s %d %s"', "GET", httpx.URL(URL), "HTTP/1.1", 200, "OK"
    )
    assert "secret-value" not in output.text()
    assert "https://api.example.com/v1/orders?api_key=***&page=***" in output.text()


@pytest.mark.parametrize("level", ["debug", "info"])
def test_httpx_and_httpcore_request_logs_are_not_written(output: LogOutput, level: str) -> None:
    output.configure(level=level)
    transport = httpx.MockTransport(lambda _: httpx.Response(200, headers={"Set-Cookie": "s=1"}))
    with httpx.Client(transport=transport) as client:
        client.get(URL, headers={"Authorization": "Bearer header-secret"})
    assert "secret-value" not in output.text()
    assert "header-secret" not in output.text()


def test_an_access_log_path_loses_its_query_values(output: LogOutput) -> None:
    output.configure()
    logging.getLogger("uvicorn.access").warning(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", "/v1/streams?token=abc123", "1.1", 401
    )
    assert "abc123" not in output.text()
    assert "/v1/streams?token=***" in output.text()


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_url_fields_lose_their_password_and_query_values(output: LogOutput, fmt: str) -> None:
    output.configure(fmt)
    structlog.get_logger("t").info("call", url="postgresql://app:pa55word@db:5432/x?sslkey=k")
    assert "pa55word" not in output.text()
    assert "postgresql://app:***@db:5432/x?sslkey=***" in output.text()


def test_urls_in_exception_messages_are_redacted(output: LogOutput) -> None:
    output.configure()
    try:
        raise httpx.HTTPStatusError(
            f"Server error '500' for url '{URL}'",
            request=httpx.Request("GET", URL),
            response=httpx.Response(500),
        )
    except httpx.HTTPStatusError:
        structlog.get_logger("t").exception("action.failed")
    assert "secret-value" not in output.text()
    assert "api_key=***" in output.text()


@pytest.mark.parametrize("key", ["token", "password", "secret", "authorization", "jwt", "api_key"])
def test_fields_named_like_secrets_are_masked(output: LogOutput, key: str) -> None:
    output.configure("json")
    structlog.get_logger("t").info("login", **{key.upper(): "hunter2"})
    assert "hunter2" not in output.text()
    assert f'"{key.upper()}": "***"' in output.text()


def test_secrets_nested_in_a_field_are_masked(output: LogOutput) -> None:
    output.configure("json")
    structlog.get_logger("t").info("config", config={"user": "ada", "client_secret": "hunter2"})
    assert "hunter2" not in output.text()
    assert "'client_secret': '***'" in output.text()


def test_headers_keep_their_names_only(output: LogOutput) -> None:
    output.configure()
    structlog.get_logger("t").info(
        "call", headers={"Authorization": "Bearer abc", "X-Trace": "trace-77"}
    )
    assert "Bearer abc" not in output.text()
    assert "trace-77" not in output.text()
    assert "Authorization" in output.text()
