"""Persist what engine transitions asked for: step history, outbox events, log lines."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.engine.core import Transition
from flowbus.engine.effects import EmitEvent, LogLine, PublishEvent, RecordAttempt, RunAction
from flowbus.outbox.writer import OutboxBatch
from flowbus.store.instances import record_attempts

log = structlog.get_logger(__name__)


class UnsupportedEffect(RuntimeError):
    """An effect this shell cannot carry out yet."""


async def save_effects(
    conn: AsyncConnection, transitions: Sequence[Transition], outbox: OutboxBatch
) -> None:
    """Write the effects of `transitions` in the caller's transaction."""
    attempts: list[tuple[str, RecordAttempt]] = []
    for transition in transitions:
        instance_id = transition.state.id
        for effect in transition.effects:
            if isinstance(effect, EmitEvent):
                outbox.emit(instance_id, effect)
            elif isinstance(effect, PublishEvent):
                outbox.publish(effect)
            elif isinstance(effect, RecordAttempt):
                attempts.append((instance_id, effect))
            elif isinstance(effect, LogLine):
                log.log(
                    _LEVELS.get(effect.level, 20),
                    effect.message,
                    instance_id=instance_id,
                    workflow_id=transition.state.workflow_id,
                    **effect.fields,
                )
            elif isinstance(effect, RunAction):
                raise UnsupportedEffect(f"external action {effect.action!r} has no runner yet")
    await record_attempts(conn, attempts)


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
