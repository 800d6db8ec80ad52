"""Dead letters: what landed on the dead-letter topic and why, as the API's recorder stored
them (`flowbus.api.recorder`), newest first; and replay, which publishes the record again
to its source topic (`flowbus.api.replay`) and records who did it in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import Field

from flowbus.api.auth import Principal, Role, guarded, requires
from flowbus.api.context import Context
from flowbus.api.models import ApiModel, RequestModel
from flowbus.api.parameters import storable, utc
from flowbus.api.problems import ApiProblem, ProblemItem, conflict, not_found
from flowbus.api.replay import Copy, replay_topics, what_to_replay
from flowbus.store.audit import AuditEntry, audit_of, record_audit
from flowbus.store.dead_letters import (
    DeadLetterFilter,
    dead_letter,
    dead_letter_page,
    mark_replayed,
)
from flowbus.store.queries import BadCursor

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])

REPLAY = "dead_letter.replay"
DeadLetterId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The dead letter's id.")]


class RecordPosition(ApiModel):
    topic: str
    partition: int
    offset: int


class DeadLetterSummary(ApiModel):
    id: int
    kind: Literal["deadletter", "parked", "unreadable"] = Field(
        description="deadletter: a record flowbus could not use; parked: an outbox event the "
        "broker refused for good; unreadable: something on the topic that is neither."
    )
    reason: str
    definition_id: str | None = None
    source_topic: str | None = Field(None, description="Where the record came from.")
    source_partition: int | None = None
    source_offset: int | None = None
    event_type: str | None = Field(None, description="The record's event type, if readable.")
    key: str | None = None
    value_bytes: int | None = Field(None, description="Size of the kept copy of the value.")
    value_complete: bool = Field(description="Whether the kept copy is the whole value.")
    replayable: bool = Field(description="Whether its source is a topic the workers consume.")
    dead_lettered_at: datetime
    recorded_at: datetime
    replayed_at: datetime | None = None
    replays: int = 0
    record: RecordPosition = Field(description="The dead-letter record itself.")


class DeadLetterPage(ApiModel):
    items: list[DeadLetterSummary]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class Replay(ApiModel):
    replayed_at: datetime
    replayed_by: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    copy_: Copy | None = Field(None, alias="copy")


class DeadLetterDetail(DeadLetterSummary):
    value: str | None = Field(
        None, description="The kept copy of the value as text (at most 64 KiB)."
    )
    history: list[Replay] = Field(description="Its replays, oldest first.")


class ReplayRequest(RequestModel):
    again: bool = Field(False, description="Replay a dead letter that was replayed before.")


class ReplayAccepted(Replay):
    dead_letter_id: int


@router.get(
    "", summary="Dead letters, newest first, filtered and paginated", **guarded(Role.VIEWER)
)
async def list_dead_letters(
    ctx: Context,
    source_topic: Annotated[str | None, Query(alias="sourceTopic", max_length=300)] = None,
    reason: Annotated[
        str | None, Query(max_length=500, description="Part of the reason, any case.")
    ] = None,
    since: Annotated[datetime | None, Query(description="Inclusive (RFC 3339).")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive (RFC 3339).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`nextCursor` of the previous page.")
    ] = None,
) -> DeadLetterPage:
    for name, value in (("sourceTopic", source_topic), ("reason", reason), ("cursor", cursor)):
        storable(name, value)
    where = DeadLetterFilter(
        source_topic=source_topic,
        reason=reason,
        since=utc("since", since),
        until=utc("until", until),
    )
    try:
        async with ctx.engine.connect() as conn:
            rows, next_cursor = await dead_letter_page(conn, where, limit, cursor)
    except BadCursor as exc:
        item = ProblemItem(detail=str(exc), parameter="cursor")
        raise ApiProblem(
            400, "invalid-cursor", str(exc), title="Invalid cursor", errors=[item]
        ) from None
    topics = replay_topics(ctx.settings)
    return DeadLetterPage(items=[_summary(r, topics) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{dead_letter_id}",
    summary="One dead letter, with its value and replays",
    **guarded(Role.VIEWER),
)
async def get_dead_letter(dead_letter_id: DeadLetterId, ctx: Context) -> DeadLetterDetail:
    async with ctx.engine.connect() as conn:
        row = await dead_letter(conn, dead_letter_id)
        if row is None:
            raise not_found(f"dead letter {dead_letter_id} does not exist")
        history = await audit_of(conn, REPLAY, str(dead_letter_id))
    summary = _summary(row, replay_topics(ctx.settings))
    return DeadLetterDetail(
        **summary.model_dump(),
        value=bytes(row.value).decode("utf-8", "replace") if row.value is not None else None,
        history=[_replay(entry) for entry in history],
    )


@router.post(
    "/{dead_letter_id}/replay",
    summary="Publish the dead letter's record again to its source topic",
    description="The original record is read back from its source topic (value, key and "
    "headers as they were); once it is gone from there, the dead letter's copy is published "
    "when it is the whole value. 409 when neither is available, when the source is not a "
    "topic the workers consume, or when it was replayed before (unless `again`).",
    status_code=202,
    **guarded(Role.OPERATOR),
)
async def replay(
    dead_letter_id: DeadLetterId,
    ctx: Context,
    response: Response,
    principal: Annotated[Principal, requires(Role.OPERATOR)],
    request: ReplayRequest | None = None,
) -> ReplayAccepted:
    again = request.again if request is not None else False
    actor = principal.subject or "anonymous"
    async with ctx.engine.begin() as conn:
        # The row stays locked until the replay is recorded: two replays cannot both publish.
        row = await dead_letter(conn, dead_letter_id, lock=True)
        if row is None:
            raise not_found(f"dead letter {dead_letter_id} does not exist")
        if row.replays and not again:
            raise conflict(
                "already-replayed",
                f"dead letter {dead_letter_id} was replayed at {row.replayed_at.isoformat()}; "
                'send {"again": true} to replay it once more',
            )
        record = await what_to_replay(ctx.settings, row)
        meta = await ctx.broker.send(
            record.topic, record.value, key=record.key, headers=record.headers
        )
        at = datetime.now(UTC)
        details = {
            "topic": record.topic,
            "partition": meta.partition,
            "offset": meta.offset,
            "copy": record.copy,
        }
        await record_audit(
            conn, actor=actor, action=REPLAY, subject=str(dead_letter_id), details=details
        )
        await mark_replayed(conn, dead_letter_id, at)
    response.headers["Location"] = f"/v1/dead-letters/{dead_letter_id}"
    return ReplayAccepted(
        dead_letter_id=dead_letter_id,
        replayed_at=at,
        replayed_by=actor,
        topic=record.topic,
        partition=meta.partition,
        offset=meta.offset,
        copy=record.copy,
    )


def _summary(row: Any, topics: set[str]) -> DeadLetterSummary:
    return DeadLetterSummary(
        id=row.id,
        kind=row.kind,
        reason=row.reason,
        definition_id=row.definition_id,
        source_topic=row.source_topic,
        source_partition=row.source_partition,
        source_offset=row.source_offset,
        event_type=row.event_type,
        key=bytes(row.key).decode("utf-8", "replace") if row.key is not None else None,
        value_bytes=row.value_bytes,
        value_complete=row.value_complete,
        replayable=row.kind == "deadletter"
        and row.source_topic in topics
        and row.source_partition is not None
        and row.source_offset is not None,
        dead_lettered_at=row.dead_lettered_at,
        recorded_at=row.recorded_at,
        replayed_at=row.replayed_at,
        replays=row.replays,
        record=RecordPosition(topic=row.topic, partition=row.partition, offset=row.offset),
    )


def _replay(entry: AuditEntry) -> Replay:
    details = entry.details
    return Replay(
        replayed_at=entry.at,
        replayed_by=entry.actor,
        topic=str(details.get("topic", "")),
        partition=details.get("partition"),
        offset=details.get("offset"),
        copy=details.get("copy"),
    )
