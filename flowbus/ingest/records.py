"""A consumed Kafka record, independent of the consumer library that delivered it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()

    def describe(self) -> dict[str, object]:
        """Where the record came from, for dead letters and logs."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}

    def value_text(self, limit: int = 65536) -> str | None:
        if self.value is None:
            return None
        return self.value[:limit].decode("utf-8", errors="replace")
