"""The synthetic installation ``flowbus bench match`` measures, meant to look like production.

* Six topics; the number of event types, sources, state-machine entities and
  SKUs grows with N (about one type per three triggers), because a large
  installation has many services, not thousands of triggers on one type.
* Trigger patterns cycle through thirteen kinds: exact ``type`` alone or with
  a numeric range, a prefix, an anything-but list, exists, a wildcard, a CIDR
  block, a condition on an array of objects; ``$or`` at the root and nested
  under ``data``; any-topic triggers with equals-ignore-case; and
  ``entity:field:to_state`` transition triggers on the ``records`` topic.
* Three broad catch-all triggers with no exact field (audit, alerting), the
  same three at every N, which the index must evaluate for every event.
* Events are CloudEvents in structured JSON mode, about 1 KB each. 15% are
  record transitions, half of them of a watched transition; of the others 35%
  carry a watched type, the rest a type no trigger names. Watched types are
  drawn with a Zipf(1) skew, as real traffic is dominated by a few types.
  Most events match no trigger.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson

from flowbus.matching.transition import transition_pattern

_TOPICS: Final = ("orders", "payments", "shipments", "customers", "inventory")
_RECORDS_TOPIC: Final = "records"
_VERBS: Final = ("created", "updated", "cancelled", "approved", "rejected", "completed")
_STATES: Final = ("draft", "pending", "approved", "rejected", "shipped", "paid", "closed", "void")
_TIERS: Final = ("bronze", "silver", "gold", "platinum")
_REGIONS: Final = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")
_STATUSES: Final = ("open", "cancelled", "void", "settled", "held")
_V = TypeVar("_V")
# Broad triggers with no exact field are evaluated for every event; the same
# few at every N keeps the comparison between pattern counts like for like.
_CATCH_ALLS: Final = 3
_TRIGGERS_PER_VALUE: Final = 2
_SKUS: Final = 1_000


@dataclass(frozen=True)
class Record:
    """One Kafka record as the consumer receives it."""

    topic: str
    key: bytes
    headers: list[tuple[str, bytes]]
    value: bytes


def _event_type(index: int, *, unwatched: bool = False) -> tuple[str, str]:
    """The topic and CloudEvents type number ``index`` (never watched if ``unwatched``)."""
    topic = _TOPICS[index % len(_TOPICS)]
    service = f"legacy{index // 30}" if unwatched else f"s{index // 30}"
    return topic, f"com.acme.{topic}.{service}.{_VERBS[index % len(_VERBS)]}"


def _sku(rng: random.Random) -> str:
    return f"SKU-{rng.randrange(_SKUS):05d}"


class Installation:
    """Vocabulary, trigger patterns and events for one pattern count."""

    def __init__(self, rng: random.Random, pattern_count: int) -> None:
        self.rng = rng
        self.pattern_count = pattern_count
        # Each watched type, source and transition gets _TRIGGERS_PER_VALUE
        # triggers, so the vocabulary grows with N and an event that hits a
        # watched value finds the same number of triggers at every N.
        self.watched_types: list[tuple[str, str]] = []
        self.watched_sources: list[str] = []
        self.watched_transitions: list[tuple[str, str, str]] = []
        self._watchers = {"type": 0, "source": 0, "transition": 0}
        self._zipf: dict[int, list[float]] = {}

    # ----------------------------------------------------------------- patterns

    def patterns(self) -> list[tuple[str | None, dict[str, Any]]]:
        """``pattern_count`` trigger patterns, each with its topic (``None``: any topic)."""
        rng = self.rng
        made = [self._catch_all(i) for i in range(min(_CATCH_ALLS, self.pattern_count))]
        kinds = (
            self._exact,
            self._numeric,
            self._prefix,
            self._anything_but,
            self._exists,
            self._wildcard,
            self._cidr,
            self._or_types,
            self._nested_or,
            self._array_objects,
            self._any_topic,
            self._transition,
            self._transition,
        )
        # Round-robin over the kinds (in a seeded order) rather than random
        # picks, so that small N gets the same mix as large N.
        order = rng.sample(kinds, len(kinds))
        while len(made) < self.pattern_count:
            made.append(order[len(made) % len(order)]())
        return made

    def _next_value(self, kind: str) -> tuple[int, bool]:
        """Index of the value the next trigger of ``kind`` watches, and whether it is new."""
        watcher = self._watchers[kind]
        self._watchers[kind] = watcher + 1
        return watcher // _TRIGGERS_PER_VALUE, watcher % _TRIGGERS_PER_VALUE == 0

    def _watch_type(self) -> tuple[str, str]:
        index, new = self._next_value("type")
        topic_type = _event_type(index)
        if new:
            self.watched_types.append(topic_type)
        return topic_type

    def _exact(self) -> tuple[str | None, dict[str, Any]]:
        topic, type_ = self._watch_type()
        return topic, {"type": [type_]}

    def _numeric(self) -> tuple[str | None, dict[str, Any]]:
        topic, type_ = self._watch_type()
        low = self.rng.choice((0, 50, 100, 500))
        bounds = [">", low, "<=", low * 10 + 100]
        return topic, {"type": [type_], "data": {"amount": [{"numeric": bounds}]}}

    def _prefix(self) -> tuple[str | None, dict[str, Any]]:
        topic, type_ = self._watch_type()
        region = {"prefix": self.rng.choice(("eu-", "us-", "ap-"))}
        return topic, {"type": [type_], "data": {"customer": {"region": [region]}}}

    def _anything_but(self) -> tuple[str | None, dict[str, Any]]:
        topic, type_ = self._watch_type()
        return topic, {
            "type": [type_],
            "data": {"status": [{"anything-but": ["cancelled", "void"]}]},
        }

    def _exists(self) -> tuple[str | None, dict[str, Any]]:
        topic, type_ = self._watch_type()
        return topic, {"type": [type_], "data": {"coupon": [{"exists": self.rng.random() < 0.5}]}}

    def _wildcard(self) -> tuple[str | None, dict[str, Any]]:
        topic, type_ = self._watch_type()
        region = self.rng.choice(("eu", "us"))
        return topic, {"type": [type_], "subject": [{"wildcard": f"{topic}/*/{region}-*"}]}

    def _cidr(self) -> tuple[str | None, dict[str, Any]]:
        topic, type_ = self._watch_type()
        block = f"10.{self.rng.randrange(4)}.0.0/16"
        return topic, {"type": [type_], "data": {"client_ip": [{"cidr": block}]}}

    def _or_types(self) -> tuple[str | None, dict[str, Any]]:
        _, first = self._watch_type()
        _, second = self._watch_type()
        tiers = {"customer": {"tier": ["gold", "platinum"]}}
        return None, {"$or": [{"type": [first]}, {"type": [second], "data": tiers}]}

    def _nested_or(self) -> tuple[str | None, dict[str, Any]]:
        index, new = self._next_value("source")
        source = f"urn:acme:svc-{index}"
        if new:
            self.watched_sources.append(source)
        urgent = {"$or": [{"priority": ["high"]}, {"amount": [{"numeric": [">=", 900]}]}]}
        return None, {"source": [source], "data": urgent}

    def _array_objects(self) -> tuple[str | None, dict[str, Any]]:
        topic, type_ = self._watch_type()
        line = {"sku": [_sku(self.rng)], "qty": [{"numeric": [">=", 2]}]}
        return topic, {"type": [type_], "data": {"items": line}}

    def _any_topic(self) -> tuple[str | None, dict[str, Any]]:
        _, type_ = self._watch_type()
        tier = {"equals-ignore-case": self.rng.choice(_TIERS).upper()}
        return None, {"type": [type_], "data": {"customer": {"tier": [tier]}}}

    def _transition(self) -> tuple[str | None, dict[str, Any]]:
        index, new = self._next_value("transition")
        entity = f"entity{index // 16}"
        field = ("status", "stage")[index // 8 % 2]
        to_state = _STATES[index % 8]
        if new:
            self.watched_transitions.append((entity, field, to_state))
        if self.rng.random() < 0.05:
            to_state = "*"
        return _RECORDS_TOPIC, transition_pattern(f"{entity}:{field}:{to_state}")

    def _catch_all(self, i: int) -> tuple[str | None, dict[str, Any]]:
        broad: list[dict[str, Any]] = [
            {"data": {"amount": [{"numeric": [">", 9_000]}]}},
            {"subject": [{"suffix": "/fraud"}]},
            {"type": [{"prefix": "com.acme.payments."}], "data": {"status": ["held"]}},
        ]
        return None, broad[i % len(broad)]

    # ----------------------------------------------------------------- events

    def _popular(self, items: Sequence[_V]) -> _V:
        """Pick from ``items`` with Zipf(1) skew: production traffic is dominated by a few types."""
        weights = self._zipf.get(len(items))
        if weights is None:
            weights = list(itertools.accumulate(1 / rank for rank in range(1, len(items) + 1)))
            self._zipf[len(items)] = weights
        return self.rng.choices(items, cum_weights=weights)[0]

    def record(self, n: int) -> Record:
        """Event number ``n`` of the stream; call after :meth:`patterns`."""
        rng = self.rng
        if rng.random() < 0.15:
            return self._transition_record(n)
        watched = rng.random() < 0.35
        if watched and self.watched_types:
            topic, type_ = self._popular(self.watched_types)
        else:
            topic, type_ = _event_type(rng.randrange(1_000_000), unwatched=True)
        if watched and self.watched_sources and rng.random() < 0.2:
            source = self._popular(self.watched_sources)
        else:
            source = f"urn:acme:edge-{rng.randrange(100)}"
        event_id = f"{n:08d}-{rng.getrandbits(64):016x}"
        region = rng.choice(_REGIONS)
        data: dict[str, Any] = {
            "order_id": f"o-{n}",
            "amount": round(
                rng.uniform(1, 10_000) if rng.random() < 0.1 else rng.uniform(1, 1_000), 2
            ),
            "currency": "EUR",
            "status": rng.choice(_STATUSES),
            "priority": rng.choice(("low", "normal", "high")),
            "client_ip": f"10.{rng.randrange(8)}.{rng.randrange(256)}.{rng.randrange(256)}",
            "customer": {
                "id": f"c-{rng.randrange(100_000)}",
                "tier": rng.choice(_TIERS).capitalize(),
                "region": region,
                "email": f"user{rng.randrange(100_000)}@example.com",
                "name": "Ada Lovelace",
            },
            "items": [
                {
                    "sku": _sku(rng),
                    "qty": rng.randrange(1, 5),
                    "price": round(rng.uniform(1, 200), 2),
                }
                for _ in range(rng.randrange(1, 5))
            ],
        }
        if rng.random() < 0.3:
            data["coupon"] = f"SAVE{rng.randrange(5, 50)}"
        envelope = {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": type_,
            "subject": f"{topic}/{data['order_id']}/{region}",
            "time": "2024-05-04T10:15:30.123Z",
            "datacontenttype": "application/json",
            "data": data,
        }
        return self._pad(topic, data, envelope, event_id)

    def _transition_record(self, n: int) -> Record:
        rng = self.rng
        if rng.random() < 0.5 and self.watched_transitions:
            entity, field, to_state = self._popular(self.watched_transitions)
        else:
            entity = f"unwatched{rng.randrange(50)}"
            field, to_state = "status", rng.choice(_STATES)
        record_id = f"r-{n}"
        data = {
            "entity": entity,
            "field": field,
            "from": rng.choice(_STATES),
            "to": to_state,
            "record_id": record_id,
            "record": {
                "id": record_id,
                field: to_state,
                "amount": round(rng.uniform(1, 1_000), 2),
                "owner": f"user{rng.randrange(1_000)}",
                "updated_at": "2024-05-04T10:15:30.123Z",
            },
        }
        envelope = {
            "specversion": "1.0",
            "id": f"{n:08d}-{rng.getrandbits(64):016x}",
            "source": "urn:acme:records",
            "type": "com.acme.record.transitioned",
            "subject": f"{entity}/{record_id}",
            "time": "2024-05-04T10:15:30.123Z",
            "datacontenttype": "application/json",
            "data": data,
        }
        return self._pad(_RECORDS_TOPIC, data, envelope, record_id)

    def _pad(self, topic: str, data: dict[str, Any], envelope: dict[str, Any], key: str) -> Record:
        # Free text, as real payloads carry, to bring the record to about 1 KB.
        size = len(orjson.dumps(envelope))
        data["notes"] = "x" * max(0, 1_000 - size - 12)
        headers = [
            ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("content-type", b"application/cloudevents+json"),
        ]
        return Record(topic, key.encode(), headers, orjson.dumps(envelope))
