"""The HTTP call of the `webhook` (alias `http`) action, declared in
`flowbus.actions.webhook`.

Its output is `{"status", "headers", "body"}`, with `"bodyTruncated": true` when the body
was longer than `BODY_LIMIT` and cut, and `"bodyNotParsed": "<why>"` when a JSON response
is kept as text (invalid, nested deeper than `limits.max_depth`, or holding `\u0000`). A
failed call raises an `ActionFailed` subclass whose `to_error_info()` becomes the step's
error.

The calls go through one aiohttp session per worker: httpx (still used to read and check
the URL) spent more CPU per call scanning its connection pool than the whole engine
spent on the step.
"""

from __future__ import annotations

import asyncio
import codecs
from typing import Any

import aiohttp
import httpx
import orjson
from multidict import CIMultiDict
from yarl import URL

from flowbus import __version__
from flowbus.actions.base import ActionContext
from flowbus.actions.webhook import Http, Webhook, WebhookConfig
from flowbus.external.base import ActionConfigError, ActionExecutor, ActionFailed, validated_config
from flowbus.limits import JsonLimits, LimitExceeded
from flowbus.storable import nul_path

__all__ = [
    "BODY_LIMIT",
    "ERROR_BODY_LIMIT",
    "ActionConfigError",
    "HttpConnectionError",
    "HttpExecutor",
    "HttpStatusError",
    "HttpTimeoutError",
    "WebhookExecutor",
]

BODY_LIMIT = 64 * 1024
"""Bytes of a response body kept in the step's output."""
ERROR_BODY_LIMIT = 4 * 1024
"""Bytes of a failed response's body kept in the error details."""

_OUTPUT_HEADERS = ("content-type", "location")


class HttpStatusError(ActionFailed):
    """The endpoint answered with a status that does not count as success."""

    error_type = "HttpError"


class HttpTimeoutError(ActionFailed):
    """No complete response within the configured timeout."""

    error_type = "TimeoutError"


class HttpConnectionError(ActionFailed):
    """The request could not be delivered or its response not read."""

    error_type = "ConnectionError"


class WebhookExecutor(ActionExecutor):
    """Sends the request `Webhook` describes, over one connection pool per executor."""

    action = Webhook

    def __init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None

    async def run(self, config: dict[str, Any], context: ActionContext) -> Any:
        cfg = validated_config(WebhookConfig, config)
        try:
            url = httpx.URL(cfg.url)
        except httpx.InvalidURL:
            url = httpx.URL()
        if url.scheme not in ("http", "https") or not url.host:
            raise ActionConfigError("url: must be an http:// or https:// URL with a host")
        if cfg.query:
            url = url.copy_merge_params(cfg.query)
        where = f"{cfg.method} {url.copy_with(query=None, fragment=None, userinfo=b'')}"
        key = context.idempotency_key
        if cfg.idempotency_key == "attempt":
            key = f"{key}:attempt-{context.tries}"
        headers: CIMultiDict[str] = CIMultiDict(
            {
                "User-Agent": f"flowbus/{__version__}",
                "Idempotency-Key": key,
                "Flowbus-Attempt": str(context.tries),
            }
        )
        for name, value in cfg.headers.items():
            headers[name] = value  # replaces a default of any case
        body = None
        if cfg.body is not None:
            body = orjson.dumps(cfg.body)
            headers.setdefault("Content-Type", "application/json")
        try:
            async with asyncio.timeout(cfg.timeout):
                response = await self._send(cfg.method, URL(str(url), encoded=True), headers, body)
        except TimeoutError:
            raise HttpTimeoutError(f"{where}: no response within {cfg.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            reason = str(exc) or type(exc).__name__
            raise HttpConnectionError(f"{where}: {reason}") from None

        expected = cfg.expect_status
        succeeded = response.status in expected if expected else 200 <= response.status < 300
        if not succeeded:
            wanted = ", ".join(map(str, expected)) if expected else "2xx"
            raise HttpStatusError(
                f"{where} answered {response.status}, expected {wanted}",
                code=str(response.status),
                details={"status": response.status, **_text_body(response, ERROR_BODY_LIMIT)},
            )
        return {
            "status": response.status,
            "headers": {
                name: response.headers[name] for name in _OUTPUT_HEADERS if name in response.headers
            },
            **_body(response, JsonLimits(BODY_LIMIT, context.max_json_depth)),
        }

    async def aclose(self) -> None:
        """Close the pooled connections; the next call opens new ones."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            # One pool shared by every workflow instance: keep no cookies between them. The
            # caller's deadline covers the whole call, body included.
            self._http = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(limit=100),
            )
        return self._http

    async def _send(
        self, method: str, url: URL, headers: CIMultiDict[str], body: bytes | None
    ) -> _Response:
        """Send and read the body up to one byte past `BODY_LIMIT`, to tell it was cut."""
        async with self._client().request(
            method, url, headers=headers, data=body, allow_redirects=False
        ) as response:
            content = bytearray()
            async for chunk in response.content.iter_any():
                content += chunk
                if len(content) > BODY_LIMIT:
                    response.close()  # the rest is never read: the connection is not reused
                    break
            return _Response(
                response.status,
                response.headers,
                response.charset,
                bytes(content[: BODY_LIMIT + 1]),
            )


class _Response:
    """What a call answered: status, headers, charset and the body read (at most one byte
    past `BODY_LIMIT`)."""

    __slots__ = ("charset", "content", "headers", "status")

    def __init__(self, status: int, headers: Any, charset: str | None, content: bytes) -> None:
        self.status = status
        self.headers = headers
        self.charset = charset
        self.content = content


class HttpExecutor(WebhookExecutor):
    """`http`: the same call as `webhook` under another name."""

    action = Http


def _text_body(response: _Response, limit: int) -> dict[str, Any]:
    """`{"body": text}` of at most `limit` bytes, cut on a character boundary and marked.

    NUL becomes U+FFFD: PostgreSQL cannot store it, and the output must be storable.
    """
    content = response.content
    try:
        decoder = codecs.getincrementaldecoder(response.charset or "utf-8")(errors="replace")
    except LookupError:  # a charset Python does not know
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    cut = len(content) > limit
    # Not final when cut: a character whose bytes run past the limit is left out whole.
    text = decoder.decode(content[:limit], final=not cut).replace("\x00", "\ufffd")
    return {"body": text, "bodyTruncated": True} if cut else {"body": text}


def _body(response: _Response, limits: JsonLimits) -> dict[str, Any]:
    """Parsed JSON for a complete JSON response within `limits`, else the text."""
    content = response.content
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if not is_json or len(content) > BODY_LIMIT:
        return _text_body(response, BODY_LIMIT)
    try:
        value = limits.loads(content, "the JSON body")
    except LimitExceeded as exc:
        reason = str(exc)
    except orjson.JSONDecodeError as exc:
        reason = f"the JSON body is not valid JSON: {exc}"
    else:
        # JSON carries NUL only escaped: the walk runs only when the escape is there.
        unstorable = nul_path(value) if b"\\u0000" in content else None
        if unstorable is None:
            return {"body": value}
        reason = f"the JSON body holds \\u0000 at {unstorable}, which cannot be stored"
    return {**_text_body(response, BODY_LIMIT), "bodyNotParsed": reason}
