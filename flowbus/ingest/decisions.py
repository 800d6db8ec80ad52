"""The decisions topic: approve or reject, proven by a signed token.

A decision is a JSON object (plain, or the data of a CloudEvent of type
`flowbus.decision`): `{"approvalId": ..., "decision": "approve"|"reject", "comment": ...,
"token": "<JWT>"}`. Every decision that cannot be applied (no or bad token, expired token,
token for another approval or answer, unknown or closed approval, and, decided in the
engine, a non-assignee, a late or a repeated decider) changes nothing and produces a
`flowbus.approval.decision_refused` event with the reason. Tokens are never logged.

The refusals decided here are unnumbered notices (no `flowbusseq`): they touch no instance,
take no lock and write no state, so forged decisions cost the instances nothing. Those the
engine decides are part of the instance's numbered sequence.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.approvals.tokens import DecisionVerifier, TokenRefused
from flowbus.config import TopicNames
from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.inputs import ApprovalDecision, EngineInput
from flowbus.envelope import DomainEvent, RecordLimits
from flowbus.ingest.batch import Batch, BatchIngest
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.effect_handlers import DECISION_REFUSED

log = structlog.get_logger(__name__)

REFUSED = DECISION_REFUSED
_ANSWERS = {"approve": True, "reject": False}


class DecisionRefused(ValueError):
    def __init__(self, reason: str, decided_by: str | None = None, kind: str = "token") -> None:
        super().__init__(reason)
        self.decided_by = decided_by
        self.kind = kind


class DecisionIngest(BatchIngest):
    """Applies batches of decision records."""

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Callable[[], DefinitionCatalog],
        outbox: Callable[[], OutboxBatch],
        consumer_group: str,
        limits: RecordLimits,
        verifier: DecisionVerifier,
        topics: TopicNames,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(engine, catalog, outbox, consumer_group, limits, clock)
        self._verifier = verifier
        self._topics = topics

    async def handle(self, batch: Batch) -> None:
        readable = [
            (event, event.data if isinstance(event.data, dict) else {}) for _, event in batch.events
        ]
        known = await batch.uow.approvals.find(
            [b["approvalId"] for _, b in readable if _is_uuid(b.get("approvalId"))]
        )
        deliveries: list[tuple[str, EngineInput]] = []
        for event, body in readable:
            approval_id = body.get("approvalId")
            try:
                decision = self._check(body, known)
            except DecisionRefused as exc:
                row = known.get(str(approval_id))
                self._refuse(batch.outbox, batch.at, event, body, str(exc), exc.decided_by, row)
                batch.report.refused.append(exc.kind)
                continue
            row = known[decision.approval_id]
            deliveries.append((str(row.instance_id), replace(decision, decision_id=event.id)))
        if deliveries:
            await batch.uow.deliver(deliveries)

    def _check(self, body: dict[str, Any], known: dict[str, Any]) -> ApprovalDecision:
        approval_id = body.get("approvalId")
        answer = body.get("decision")
        if not isinstance(approval_id, str) or answer not in _ANSWERS:
            raise DecisionRefused(
                "a decision needs approvalId and decision (approve or reject)", kind="malformed"
            )
        try:
            decider = self._verifier.verify(body.get("token"), approval_id, answer)
        except TokenRefused as exc:
            raise DecisionRefused(str(exc)) from None
        row = known.get(approval_id)
        if row is None:
            raise DecisionRefused("unknown approval", decider.user, kind="unknown")
        if row.status != "pending":
            raise DecisionRefused(
                f"the approval is closed ({row.status})", decider.user, kind="closed"
            )
        comment = body.get("comment")
        return ApprovalDecision(
            step_id=row.step_id,
            approval_id=approval_id,
            approved=_ANSWERS[answer],
            decided_by=decider.user,
            groups=decider.groups,
            comment=comment if isinstance(comment, str) else None,
        )

    def _refuse(
        self,
        outbox: OutboxBatch,
        at: str,
        event: DomainEvent,
        body: dict[str, Any],
        reason: str,
        decided_by: str | None,
        row: Any,
    ) -> None:
        approval_id = body.get("approvalId")
        instance_id = str(row.instance_id) if row is not None else None
        outbox.notice(
            identity=event.dedupe_key,
            topic=self._topics.approvals,
            type=REFUSED,
            time=at,
            key=instance_id or (approval_id if isinstance(approval_id, str) else None),
            subject=instance_id,
            data={
                "approvalId": approval_id if isinstance(approval_id, str) else None,
                "instanceId": instance_id,
                "decidedBy": decided_by,
                "decision": body.get("decision"),
                "reason": reason,
                "decisionId": event.id,
            },
        )
        log.warning(
            "decision.refused",
            reason=reason,
            approval_id=approval_id,
            instance_id=instance_id,
            decided_by=decided_by,
            topic=event.topic,
            offset=event.offset,
        )


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
