"""Probes of a running flowbus, in a process of their own so that the assault's own work in
the test process never delays them: a health request to the API and a good event through
the worker, each timed, until SIGTERM; then the timings are written as JSON.

    python -m tests.hostile.probe API_URL BROKER TOPIC DSN OUT_FILE
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer

FAILED = 1e9
"""The time recorded for a probe that got no good answer at all."""


async def probe_api(url: str, timings: list[float], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop.is_set():
            began = time.monotonic()
            try:
                ok = (await client.get("/healthz")).status_code == 200
            except httpx.HTTPError:
                ok = False
            timings.append(time.monotonic() - began if ok else FAILED)
            await asyncio.sleep(0.2)


async def probe_events(
    broker: str, topic: str, dsn: str, timings: list[float], stop: asyncio.Event
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    conn = await asyncpg.connect(dsn)
    try:
        number = 0
        while not stop.is_set():
            number += 1
            probe = f"p-{number}"
            began = time.monotonic()
            await producer.send_and_wait(topic, orjson.dumps({"type": "probe.ok", "probe": probe}))
            elapsed = FAILED
            while time.monotonic() - began < 10:
                status = await conn.fetchval(
                    "SELECT status FROM instances WHERE correlation_id = $1", probe
                )
                if status == "completed":
                    elapsed = time.monotonic() - began
                    break
                await asyncio.sleep(0.01)
            timings.append(elapsed)
            await asyncio.sleep(0.3)
    finally:
        await conn.close()
        await producer.stop()


async def main(api: str, broker: str, topic: str, dsn: str) -> dict[str, list[float]]:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    timings: dict[str, list[float]] = {"api": [], "events": []}
    await asyncio.gather(
        probe_api(api, timings["api"], stop),
        probe_events(broker, topic, dsn, timings["events"], stop),
    )
    return timings


if __name__ == "__main__":
    api_url, broker_url, topic_name, database, out_file = sys.argv[1:6]
    Path(out_file).write_bytes(
        orjson.dumps(asyncio.run(main(api_url, broker_url, topic_name, database)))
    )
