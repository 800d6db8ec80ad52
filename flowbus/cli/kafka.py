"""`flowbus publish`, `flowbus tail` and `flowbus topics`: talk to the broker directly."""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from flowbus.cli.common import fail, run, settings_for_cli
from flowbus.envelope import cloudevent, decode_headers, encode
from flowbus.topic_catalog import create_topics, load_catalog


@click.command()
@click.argument("topic")
@click.argument("payload")
@click.option("--key", help="Record key.")
@click.option(
    "--cloudevent",
    "as_cloudevent",
    is_flag=True,
    help="Wrap PAYLOAD as the data of a structured CloudEvent (needs --type).",
)
@click.option("--type", "event_type", help="CloudEvents type (with --cloudevent).")
@click.option("--source", default="flowbus-cli", show_default=True, help="CloudEvents source.")
@click.option("--id", "event_id", help="CloudEvents id (default: a new UUID).")
@click.option("--raw", is_flag=True, help="Publish PAYLOAD as it is, without checking it is JSON.")
def publish(
    topic: str,
    payload: str,
    key: str | None,
    as_cloudevent: bool,
    event_type: str | None,
    source: str,
    event_id: str | None,
    raw: bool,
) -> None:
    """Publish one event: PAYLOAD is JSON (use - to read it from standard input)."""
    settings = settings_for_cli()
    text = sys.stdin.read() if payload == "-" else payload
    if raw:
        partition, offset = run(publish_bytes(settings.broker_url, topic, key, text.encode()))
        click.echo(f"published to {topic}[{partition}] at offset {offset}")
        return
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise fail(f"PAYLOAD is not JSON: {exc}") from None
    if as_cloudevent:
        if not event_type:
            raise fail("--cloudevent needs --type")
        body = cloudevent(
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=event_type,
            time=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            data=body,
        )
    partition, offset = run(publish_bytes(settings.broker_url, topic, key, encode(body)))
    click.echo(f"published to {topic}[{partition}] at offset {offset}")


async def publish_bytes(
    bootstrap: str, topic: str, key: str | None, value: bytes
) -> tuple[int, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            topic, value=value, key=key.encode() if key is not None else None
        )
        return meta.partition, meta.offset
    finally:
        await producer.stop()


@click.command()
@click.argument("topics", nargs=-1, required=True)
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record, not the newest.")
@click.option("--max", "max_records", type=int, help="Stop after this many records.")
@click.option("--timeout", type=float, help="Stop after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def tail(
    topics: tuple[str, ...],
    from_beginning: bool,
    max_records: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print events from TOPICS as they arrive (Ctrl-C to stop)."""
    settings = settings_for_cli()
    with contextlib.suppress(KeyboardInterrupt):
        run(_tail(settings.broker_url, list(topics), from_beginning, max_records, timeout, as_json))


async def _tail(
    bootstrap: str,
    topics: list[str],
    from_beginning: bool,
    max_records: int | None,
    seconds: float | None,
    as_json: bool,
) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            ids = consumer.partitions_for_topic(topic)
            if ids is None:
                await consumer._client.force_metadata_update()
                ids = consumer.partitions_for_topic(topic)
            if not ids:
                raise fail(f"topic {topic!r} does not exist")
            partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        deadline = None if seconds is None else time.monotonic() + seconds
        seen = 0
        while max_records is None or seen < max_records:
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                return
            batch = await consumer.getmany(timeout_ms=int(wait * 1000))
            for records in batch.values():
                for record in records:
                    click.echo(_render(record, as_json))
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
    finally:
        await consumer.stop()


def _render(record: Any, as_json: bool) -> str:
    try:
        value: Any = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        value = record.value.decode("utf-8", errors="replace")
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    if as_json:
        return orjson.dumps(
            {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": key,
                "headers": decode_headers(record.headers),
                "value": value,
            }
        ).decode()
    if isinstance(value, dict) and "specversion" in value:
        data = orjson.dumps(value.get("data")).decode()
        return f"{record.topic} {value.get('type')} subject={value.get('subject')} {data}"
    shown = value if isinstance(value, str) else orjson.dumps(value).decode()
    return f"{record.topic} key={key} {shown}"


@click.group()
def topics() -> None:
    """The topic catalog (topics/catalog.yaml)."""


@topics.command("create")
@click.option("--replication-factor", default=1, show_default=True)
def topics_create(replication_factor: int) -> None:
    """Create every catalog topic and configured source topic that is missing."""
    settings = settings_for_cli()
    created = run(create_topics(settings.broker_url, load_catalog(settings), replication_factor))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@topics.command("list")
def topics_list() -> None:
    """Print the catalog: name, partitions, retention, event types."""
    settings = settings_for_cli()
    for spec in load_catalog(settings):
        events = ", ".join(spec.events) or "-"
        days = spec.retention_ms / 86_400_000
        click.echo(f"{spec.name:<24} partitions={spec.partitions:<3} retention={days:g}d  {events}")
