"""The topic catalog under `topics/`: what flowbus reads and writes, and creating it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from flowbus.config import Settings

TOPICS_DIR = Path(
    os.environ.get("FLOWBUS_TOPICS_DIR", Path(__file__).resolve().parents[1] / "topics")
)
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    description: str = ""
    events: dict[str, str] = field(default_factory=dict)


def retention_ms(value: str) -> int:
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"retention {value!r} must look like 7d, 12h, 30m or 45s")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def load_catalog(settings: Settings, directory: Path = TOPICS_DIR) -> list[TopicSpec]:
    """Catalog topics under their configured names, then the configured source topics."""
    raw = yaml.safe_load((directory / "catalog.yaml").read_text())
    specs = []
    for entry in raw["topics"]:
        specs.append(
            TopicSpec(
                name=getattr(settings.topics, entry["setting"]),
                partitions=int(entry["partitions"]),
                retention_ms=retention_ms(entry["retention"]),
                description=str(entry.get("description", "")).strip(),
                events=dict(entry.get("events", {})),
            )
        )
    defaults = raw.get("source_defaults", {})
    known = {s.name for s in specs}
    for name in settings.source_topics:
        if name not in known:
            specs.append(
                TopicSpec(
                    name=name,
                    partitions=int(defaults.get("partitions", 6)),
                    retention_ms=retention_ms(defaults.get("retention", "7d")),
                    description="Domain topic (source).",
                )
            )
    return specs


def event_schemas(directory: Path = TOPICS_DIR) -> dict[str, dict[str, Any]]:
    """CloudEvents type -> JSON Schema of its data, from the catalog."""
    raw = yaml.safe_load((directory / "catalog.yaml").read_text())
    return {
        event_type: orjson.loads((directory / path).read_bytes())
        for entry in raw["topics"]
        for event_type, path in entry.get("events", {}).items()
    }


async def create_topics(
    bootstrap_servers: str,
    specs: list[TopicSpec],
    replication_factor: int = 1,
    extra: list[str] | None = None,
) -> list[str]:
    """Create the missing topics; return the names created."""
    all_specs = list(specs) + [
        TopicSpec(name=name, partitions=3, retention_ms=retention_ms("7d")) for name in extra or []
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in all_specs if s.name not in existing]
        if not missing:
            return []
        created: list[str] = []
        for spec in missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=replication_factor,
                            topic_configs={"retention.ms": str(spec.retention_ms)},
                        )
                    ]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                continue
        return created
    finally:
        await admin.close()
