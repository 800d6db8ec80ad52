"""A consumed Kafka record, independent of the consumer library that delivered it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson


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
        """The start of the value as UTF-8 text: at most `limit` bytes of the value, and at
        most `limit` bytes again once written as a JSON string (escapes, replaced bytes)."""
        if self.value is None:
            return None
        text = self.value[:limit].decode("utf-8", errors="replace")
        while len(orjson.dumps(text)) > limit:
            text = text[: len(text) // 2]
        return text
