"""Bounds every request is held to before any route runs, so that no request body and no
slow client can make the API hang, grow without limit or answer a server error.

- A `Content-Length` over `limits.max_body_bytes` is answered 413 at once; nothing is read.
- A body that grows past that limit while it streams in (chunked, or a `Content-Length`
  that lied) is answered 413 as soon as it does; the rest is not kept.
- After a 413 the rest of the body is read and dropped, up to `DRAIN_BYTES` and within the
  time limit, before the connection closes: most HTTP clients send the whole body before
  they read an answer, and would otherwise see a reset connection instead of the 413.
- A body nested deeper than `limits.max_depth` is answered 400, decided on the raw bytes,
  so no parser ever recurses into it.
- A request not answered within `limits.request_timeout` seconds is answered 504, or 408
  when the client had not finished sending its body. Live streams (`text/event-stream`)
  are held to the limit only until their response starts.

Every answer is a problem document, like any other error of the API.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowbus.api.problems import ApiProblem, problem_for_path
from flowbus.limits import JsonLimits, LimitExceeded

STREAM_MEDIA_TYPE = b"text/event-stream"
DRAIN_BYTES = 16 * 1024 * 1024


def refusal(exc: LimitExceeded) -> ApiProblem:
    """The answer to a body over a limit: 413 when too large, 400 when too deep."""
    if exc.kind == "size":
        return ApiProblem(413, "too-large", str(exc), title="Request body too large")
    return ApiProblem(400, "too-deep", str(exc), title="Request body too deep")


def _too_large(detail: str) -> ApiProblem:
    # What follows the refused body is no request: the connection ends with this answer.
    return ApiProblem(
        413, "too-large", detail, title="Request body too large", headers={"Connection": "close"}
    )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # The HTTP server has checked that it is one decimal number.
            return int(value)
    return None


async def _answer(scope: Scope, receive: Receive, send: Send, problem: ApiProblem) -> None:
    await problem_for_path(scope["path"], problem)(scope, receive, send)


class BodyLimit:
    """Reads each request body in full, refusing it past the size or depth limit, and hands
    the route the checked bytes."""

    def __init__(self, app: ASGIApp, limits: JsonLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        most = self.limits.max_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > most:
            detail = f"the request body is {declared} bytes, over the limit of {most}"
            await _refuse(scope, receive, send, detail, drain=declared <= DRAIN_BYTES)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before it finished sending
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > most:
                detail = f"the request body is over the limit of {most} bytes"
                drain = message.get("more_body", False)
                await _refuse(scope, receive, send, detail, drain=drain)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            self.limits.check(body, "the request body")
        except LimitExceeded as exc:
            await _answer(scope, receive, send, refusal(exc))
            return
        await self.app(scope, _replay(body, receive), send)


async def _refuse(scope: Scope, receive: Receive, send: Send, detail: str, drain: bool) -> None:
    """Answer 413 at once; then, if `drain`, drop the rest of the body before ending the
    response, so that a client still sending gets to read the answer."""
    if not drain:
        await _answer(scope, receive, send, _too_large(detail))
        return

    async def held_open(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "more_body": True}
        await send(message)

    await _answer(scope, receive, held_open, _too_large(detail))
    dropped = 0
    while dropped <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            break
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body once, then waits on the client as before (a live
    stream learns this way that its client went away)."""
    given = False

    async def receiving() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receiving


class TimeLimit:
    """Answers a request that is not answered in time, cancelling its route."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_received = False
        response_started = False

        async def receiving() -> Message:
            nonlocal body_received
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_received = True
            return message

        async def sending(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if _is_stream(message):
                    deadline.deadline = math.inf
            await send(message)

        with anyio.move_on_after(self.seconds) as deadline:
            await self.app(scope, receiving, sending)
        if not deadline.cancelled_caught or response_started:
            return  # answered; or cut off mid-response, where only closing is left
        if body_received:
            problem = ApiProblem(
                504,
                "timeout",
                f"the request was not answered within {self.seconds:g} seconds",
                title="Request timed out",
            )
        else:
            problem = ApiProblem(
                408,
                "body-timeout",
                f"the request body did not arrive within {self.seconds:g} seconds",
                title="Request body timed out",
                headers={"Connection": "close"},
            )
        await _answer(scope, receive, send, problem)


def _is_stream(start: Message) -> bool:
    return any(
        name == b"content-type" and value.split(b";")[0].strip() == STREAM_MEDIA_TYPE
        for name, value in start.get("headers", ())
    )


def check_expanded(value: Any, limits: JsonLimits, what: str = "the request body") -> None:
    """Hold a parsed YAML document to the limits as if it were JSON text.

    YAML aliases repeat one node wherever they appear, so a small document can stand for an
    enormous one; and block-style nesting shows no brackets to the byte check. This walks
    each distinct node once, so it costs what the document costs, not what it expands to.
    Every value takes at least one byte as JSON: more values than `max_bytes` is too large.
    """
    measured: dict[int, tuple[int, int]] = {}

    def measure(item: Any, depth: int) -> tuple[int, int]:
        """(values, nesting) of `item` expanded, refusing it as soon as it is over."""
        if not isinstance(item, dict | list):
            return 1, 0
        known = measured.get(id(item))
        if known is None:
            if depth >= limits.max_depth:
                raise LimitExceeded(
                    f"{what} is nested deeper than the limit of {limits.max_depth}", kind="depth"
                )
            values, nesting = 1, 0
            for child in item.values() if isinstance(item, dict) else item:
                child_values, child_nesting = measure(child, depth + 1)
                values += child_values
                nesting = max(nesting, child_nesting)
                if values > limits.max_bytes:
                    raise LimitExceeded(
                        f"{what} expands to over {limits.max_bytes} values", kind="size"
                    )
            known = measured[id(item)] = values, nesting + 1
        if depth + known[1] > limits.max_depth:
            raise LimitExceeded(
                f"{what} is nested deeper than the limit of {limits.max_depth}", kind="depth"
            )
        return known

    measure(value, 0)
