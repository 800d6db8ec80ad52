"""Bring a deployment to life on a broker and a database: schema, topics, definitions."""

from __future__ import annotations

from pathlib import Path

import structlog

from flowbus.config import Settings
from flowbus.definitions.model import WorkflowDefinition
from flowbus.definitions.step import Compensation
from flowbus.service.definitions import store_definition_files
from flowbus.steps.action import ActionStepModel
from flowbus.store.database import create_engine, migrate
from flowbus.topic_catalog import create_topics, load_catalog

log = structlog.get_logger(__name__)


def sink_topics(definitions: list[WorkflowDefinition]) -> list[str]:
    """Fixed topics that `send_event` actions and compensations publish to (created up front
    in development)."""
    names: set[str] = set()
    for definition in definitions:
        for step in definition.step_map().values():
            calls: list[ActionStepModel | Compensation] = []
            if isinstance(step, ActionStepModel):
                calls.append(step)
            if step.compensate is not None:
                calls.append(step.compensate)
            for call in calls:
                config = call.config.source
                topic = config.get("topic") if isinstance(config, dict) else None
                if call.action == "send_event" and isinstance(topic, str) and "{{" not in topic:
                    names.add(topic)
    return sorted(names)


async def prepare(
    settings: Settings, workflows_dir: Path | None = None
) -> list[WorkflowDefinition]:
    """Migrate the schema, create the topics and store the definitions in `workflows_dir`."""
    await migrate(settings.database_url)
    directory = workflows_dir or settings.workflows_dir
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        # Tasks and definitions alike; definitions are known once their task references
        # are resolved against the stored tasks, so topics are created after storing.
        files = await store_definition_files(engine, directory) if directory.exists() else []
    finally:
        await engine.dispose()
    stored = [s.definition for s in files]
    created = await create_topics(
        settings.broker_url, load_catalog(settings), extra=sink_topics(stored)
    )
    if created:
        log.info("topics.created", topics=created)
    log.info("definitions.applied", workflows=[f"{d.id}@v{d.version}" for d in stored])
    return stored
