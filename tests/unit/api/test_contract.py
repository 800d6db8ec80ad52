"""The API's contract as documents and request models: a valid OpenAPI 3.1 document, and
request bodies that refuse what cannot be stored."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.versions import consts, shortcuts
from pydantic import ValidationError

from flowbus.api.app import create_app
from flowbus.api.models import CancelInstance, SendEvent, StartInstance
from flowbus.config import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(api={"auth": {"enabled": False}})
    openapi: dict[str, Any] = create_app(settings).openapi()
    return openapi


def test_the_openapi_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    assert shortcuts.get_spec_version(document) == consts.OPENAPIV31

    validate(document)


def test_the_openapi_document_uses_no_keyword_newer_than_3_1(document: dict[str, Any]) -> None:
    assert b'"itemSchema"' not in orjson.dumps(document)


def test_live_streams_are_described_as_event_stream_text(document: dict[str, Any]) -> None:
    stream = document["paths"]["/v1/instances/{instance_id}/events"]["get"]["responses"]["200"]

    assert stream["content"]["text/event-stream"]["schema"]["type"] == "string"


@pytest.mark.parametrize(
    ("model", "body", "where"),
    [
        (
            StartInstance,
            {"workflowId": "w", "input": {"items": [{"name": "a\x00b"}]}},
            "input.items[0].name",
        ),
        (StartInstance, {"workflowId": "w", "input": "\x00"}, "input"),
        (StartInstance, {"workflowId": "w", "input": {"k\x00": 1}}, "input.k\x00"),
        (StartInstance, {"workflowId": "w", "correlationId": "c\x00"}, "correlationId"),
        (SendEvent, {"event": {"note": ["\x00"]}}, "event.note[0]"),
        (CancelInstance, {"reason": "\x00"}, "reason"),
    ],
)
def test_a_nul_character_anywhere_in_a_request_is_refused_naming_where(
    model: Any, body: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)

    assert f"{where} holds the NUL character" in str(refused.value)
