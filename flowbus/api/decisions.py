"""Decisions people make through the API, published as any approver service would publish
them: a CloudEvent of type `flowbus.decision` on the decisions topic, keyed by the approval
id, whose data carries a decision token signed with the deployment's key (the key
`flowbus approvals decide` signs with) for the person the API knows: the bearer token's
subject and `groups` claim. The worker then accepts or refuses it by the same rules as any
decision; the CloudEvent's id is the decision id its events name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from fastapi import Request

from flowbus.api.broker import Broker
from flowbus.api.problems import ApiProblem
from flowbus.api.publish import Published, api_source
from flowbus.approvals.tokens import TokenRefused, sign_decision
from flowbus.config import Settings
from flowbus.envelope import STRUCTURED_CONTENT_TYPE, cloudevent, encode
from flowbus.times import rfc3339

DECISION_TYPE = "flowbus.decision"
MAX_GROUPS = 100


@dataclass(frozen=True, slots=True)
class Person:
    """Who decides: a user name and the groups they belong to."""

    user: str
    groups: tuple[str, ...] = ()


def token_groups(request: Request) -> tuple[str, ...]:
    """The `groups` claim of the request's bearer token. Only called once the route's role
    check verified that token, so its claims are read here without checking it again."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return ()
    try:
        claims: dict[str, Any] = jwt.decode(
            credentials.strip(), options={"verify_signature": False}
        )
    except jwt.PyJWTError:
        return ()
    groups = claims.get("groups")
    if not isinstance(groups, list):
        return ()
    return tuple(g for g in groups[:MAX_GROUPS] if isinstance(g, str) and g and "\x00" not in g)


async def publish_decision(
    broker: Broker,
    settings: Settings,
    *,
    approval_id: str,
    instance_id: str,
    decision: str,
    person: Person,
    comment: str | None,
) -> Published:
    """Sign `person`'s decision and publish it to the decisions topic."""
    try:
        token = sign_decision(
            settings.approvals,
            approval_id=approval_id,
            decision=decision,
            user=person.user,
            groups=list(person.groups),
        )
    except (TokenRefused, OSError) as exc:
        raise ApiProblem(
            503,
            "signing-unavailable",
            f"the API cannot sign decisions: {exc} (set approvals.hs256_secret, or "
            "approvals.signing_key_file for RS256/ES256)",
        ) from None
    data: dict[str, Any] = {"approvalId": approval_id, "decision": decision, "token": token}
    if comment:
        data["comment"] = comment
    decision_id = str(uuid.uuid4())
    event = cloudevent(
        id=decision_id,
        source=api_source(settings.deployment),
        type=DECISION_TYPE,
        time=rfc3339(datetime.now(UTC)),
        subject=instance_id,
        data=data,
    )
    topic = settings.topics.decisions
    meta = await broker.send(
        topic,
        encode(event),
        key=approval_id,
        headers=[("content-type", STRUCTURED_CONTENT_TYPE.encode())],
    )
    return Published(decision_id, topic, meta.partition, meta.offset, "structured")
