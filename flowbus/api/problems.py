"""Errors as RFC 9457 problem details (`application/problem+json`), for every error the API
returns: its own refusals, request validation, unknown routes and unexpected failures."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException

from flowbus.definitions.errors import Problem as DefinitionProblem

log = structlog.get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPES = "https://flowbus.dev/problems/"


class ProblemItem(BaseModel):
    """One thing wrong with the request: where (a JSON Pointer into the body, a parameter, or
    a definition's step and field) and what."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    detail: str
    pointer: str | None = Field(None, description="JSON Pointer into the request body.")
    parameter: str | None = Field(None, description="The query, path or header parameter.")
    step_id: str | None = Field(None, description="The definition's step, for definitions.")
    field: str | None = Field(None, description="The field, for definitions.")


class Problem(BaseModel):
    """An RFC 9457 problem: `type` names the kind of error, `detail` this occurrence."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = Field(None, description="The request path.")
    errors: list[ProblemItem] | None = None


class ApiProblem(Exception):
    """An error the API answers with a problem document."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        title: str | None = None,
        errors: Sequence[ProblemItem] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = headers
        self.extensions = extensions


def not_found(detail: str) -> ApiProblem:
    return ApiProblem(404, "not-found", detail)


def conflict(kind: str, detail: str, **extensions: Any) -> ApiProblem:
    return ApiProblem(409, kind, detail, **extensions)


def json_pointer(parts: Sequence[Any]) -> str:
    """A JSON Pointer (RFC 6901) as a URI fragment: `#/input/items/0`."""
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def definition_items(problems: Sequence[DefinitionProblem]) -> list[ProblemItem]:
    return [ProblemItem(detail=p.message, step_id=p.step_id, field=p.field) for p in problems]


def problem_response(request: Request, problem: ApiProblem) -> JSONResponse:
    return problem_for_path(request.url.path, problem)


def problem_for_path(path: str, problem: ApiProblem) -> JSONResponse:
    """The problem document answering a request for `path` (also usable as an ASGI app, by
    middleware that answers before any route runs)."""
    body = Problem(
        type=PROBLEM_TYPES + problem.kind,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=path,
        errors=problem.errors,
        **problem.extensions,
    )
    return JSONResponse(
        body.model_dump(mode="json", by_alias=True, exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def _request_problem(exc: RequestValidationError) -> ApiProblem:
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", "invalid JSON")
            return ApiProblem(
                400,
                "malformed-json",
                f"the request body is not valid JSON: {reason}",
                title="Malformed JSON",
            )
    items = [_item(err) for err in errors]
    in_body = all(err["loc"][:1] == ("body",) for err in errors)
    where = "request body" if in_body else "request"
    return ApiProblem(
        422 if in_body else 400,
        "invalid-request",
        f"the {where} is not valid: " + "; ".join(_describe(i) for i in items),
        title="Invalid request",
        errors=items,
    )


def _item(err: Any) -> ProblemItem:
    location, *path = err["loc"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if location == "body":
        return ProblemItem(detail=message, pointer=json_pointer(path))
    return ProblemItem(detail=message, parameter=".".join(str(p) for p in path) or str(location))


def _describe(item: ProblemItem) -> str:
    where = item.parameter or (item.pointer or "#/").removeprefix("#/") or "body"
    return f"{where}: {item.detail}"


def install(app: FastAPI) -> None:
    """Answer every error with a problem document."""

    async def api_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(request, exc)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(request, _request_problem(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.method} {request.url.path}"
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(request, ApiProblem(exc.status_code, kind, detail, headers=headers))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.unexpected_error", path=request.url.path, method=request.method)
        return problem_response(
            request,
            ApiProblem(500, "internal-error", "an unexpected error occurred; see the API log"),
        )

    app.add_exception_handler(ApiProblem, api_problem)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
