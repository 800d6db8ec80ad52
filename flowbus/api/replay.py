"""Replaying a dead letter: the record flowbus could not use goes back onto its source topic,
so that the worker takes it again (after the cause was fixed: a definition changed, a
missing instance now exists).

What is published is the original record, read back from its source topic at its offset:
its value, key and headers byte for byte (a binary-mode CloudEvent keeps its `ce_*`
headers, so its id, and flowbus's deduplication on it, stay the same). Once the record is
gone from the topic (retention), the dead-letter event's copy is published instead, but
only when that copy is the whole value (see `flowbus.api.recorded`); a record whose value
is not available whole cannot be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from flowbus.api.problems import ApiProblem, conflict
from flowbus.config import Settings

READ_TIMEOUT = 5.0

Copy = Literal["original", "dead-letter copy"]


@dataclass(frozen=True, slots=True)
class Replayable:
    """What a replay publishes, and where."""

    topic: str
    value: bytes
    key: str | None
    headers: Sequence[tuple[str, bytes]]
    copy: Copy


def replay_topics(settings: Settings) -> set[str]:
    """The topics a dead letter may go back to: those the workers consume."""
    topics = settings.topics
    return {*settings.source_topics, topics.commands, topics.decisions, topics.results}


async def what_to_replay(settings: Settings, row: Any) -> Replayable:
    """The record to publish for the dead letter `row`, or a 409 saying why there is none."""
    if row.kind == "parked":
        raise conflict(
            "not-replayable",
            "a parked outbox event is kept in the outbox_parked table, not on a topic: publish "
            "it again from there once the broker takes it (see Operations in the README)",
        )
    topic, partition, offset = row.source_topic, row.source_partition, row.source_offset
    if row.kind != "deadletter" or topic is None or partition is None or offset is None:
        raise conflict("not-replayable", "the dead letter does not say where its record came from")
    if topic not in replay_topics(settings):
        raise conflict(
            "not-replayable",
            f"{topic} is not a topic this deployment consumes: a replay would reach no worker",
        )
    original = await read_record(settings, topic, partition, offset)
    if original is not None:
        value, key, headers = original
        if len(value) > settings.limits.max_record_bytes:
            raise conflict(
                "not-replayable",
                f"the record is {len(value)} bytes, over the limit of "
                f"{settings.limits.max_record_bytes}: it would be dead-lettered again",
            )
        return Replayable(topic, value, _text_key(key), headers, "original")
    if not row.value_complete or row.value is None or not row.key_complete:
        raise conflict(
            "value-not-whole",
            f"the record is no longer on {topic}[{partition}] at offset {offset}, and the "
            "dead letter's copy of it is not the whole value (it keeps at most 64 KiB, as text)",
        )
    key = bytes(row.key) if row.key is not None else None
    return Replayable(topic, bytes(row.value), _text_key(key), (), "dead-letter copy")


async def read_record(
    settings: Settings, topic: str, partition: int, offset: int
) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]] | None:
    """The value, key and headers of the record at `offset`, or None when it is gone (or
    the broker does not answer within a few seconds)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_url,
        enable_auto_commit=False,
        max_partition_fetch_bytes=max(1_048_576, settings.limits.max_record_bytes + 65_536),
        client_id="flowbus-replay",
    )
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            await consumer.start()
            return await _read(consumer, TopicPartition(topic, partition), offset)
    except (KafkaError, OSError, TimeoutError):
        return None
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


async def _read(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int
) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]] | None:
    await consumer._client.force_metadata_update()
    if tp.partition not in (consumer.partitions_for_topic(tp.topic) or set()):
        return None
    first = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    if not first <= offset < end:
        return None
    consumer.assign([tp])
    consumer.seek(tp, offset)
    deadline = time.monotonic() + READ_TIMEOUT
    while time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
        for record in batch.get(tp, []):
            if record.offset != offset or record.value is None:
                return None
            headers = [(name, value or b"") for name, value in record.headers]
            return record.value, record.key, headers
    return None


def _text_key(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiProblem(
            409, "not-replayable", "the record's key is not UTF-8 text; it cannot be replayed"
        ) from None
