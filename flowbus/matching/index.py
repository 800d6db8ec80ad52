"""Match one event against many trigger patterns without trying them all.

:class:`TriggerIndex` holds ``(key, topic, pattern)`` entries and returns the
keys whose pattern matches a match document. Matching cost depends on how many
patterns *could* match the event, not on how many there are.

How candidates are chosen
-------------------------
1. **Topic.** Entries are grouped by topic; an entry with topic ``None``
   listens on every topic and is copied into each group (and into a group
   used for topics no entry names). One dict lookup picks the group.
2. **Exact-value anchors.** Compiling a pattern yields its *anchors*: fields
   that must hold one of a few exact strings for the pattern to match at all,
   e.g. ``type`` in ``{"type": ["order.created"], ...}`` or ``data.entity``
   in a transition trigger. ``$or`` contributes an anchor when every branch
   has one (``{"$or": [{"type": ["a"]}, {"type": ["b"]}]}`` anchors on
   ``type`` in ``{a, b}``). Prefix, numeric, anything-but, etc. never anchor.
3. **A small decision tree per group.** At each node every pattern files
   itself under the anchor that is cheapest for it, where the cost of an
   anchor is the share of events expected to hit it: the number of strings it
   accepts divided by the number of distinct strings all patterns at the node
   use on that field. A node keeps ``field -> value -> child node`` tables;
   each child is built the same way from its patterns' remaining anchors, so
   a transition trigger ends up under ``data.entity = order`` then
   ``data.to = approved`` (in whichever order is more selective). Nodes with
   few patterns, and patterns with no anchor left, are plain candidate lists.
4. **Evaluation.** Walking the tree costs one dict lookup per table on the
   path the event takes. A pattern collected on the way is evaluated without
   the fields the walk already checked (its *residual*, compiled when the
   index is built; identical residuals such as ``amount > 100`` are shared),
   and a pattern with nothing left, like ``{"type": ["order.created"]}``, is
   a match outright. If the walk reached a field through an array, checked
   fields may come from different array elements, which array-consistent
   matching rejects, so those candidates are evaluated in full instead.
   Results come back in entry order.

Patterns without any anchor (say only a ``prefix`` on ``type``) are candidates
for every event on their topic, so keep them few.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Final, Generic, TypeVar

from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import (
    Anchor,
    CompiledPattern,
    FieldPath,
    PatternCompiler,
    residual_pattern,
)

__all__ = ["TriggerIndex"]

K = TypeVar("K", bound=Hashable)

# Below this many patterns a node stops splitting: a dict lookup per table is
# not cheaper than evaluating a couple of compiled patterns.
_LEAF_SIZE: Final = 2

_Matcher = Callable[[Mapping[str, Any]], bool]
_Pending = list[tuple[int, _Matcher]]
# (entry ordinal, anchors not yet used by the tree, field anchors used so far)
_Item = tuple[int, tuple[Anchor, ...], frozenset[FieldPath]]


class _Node:
    __slots__ = ("certain", "pending", "tables", "whole")

    def __init__(
        self,
        pending: tuple[tuple[int, _Matcher], ...],
        certain: tuple[int, ...],
        whole: tuple[int, ...],
        tables: tuple[tuple[str, FieldPath, dict[str, _Node]], ...],
    ) -> None:
        # Entries that become candidates here, with their patterns minus the
        # fields checked on the way; valid when the walk crossed no array.
        self.pending = pending
        # Entries with nothing left to test after those fields: matched.
        self.certain = certain
        # All entries settled here, for walks across arrays: checked fields
        # may then come from different array elements, which array-consistent
        # matching rejects, so the whole pattern is evaluated.
        self.whole = whole
        # (first key, remaining keys, value -> child) per indexed field.
        self.tables = tables


class TriggerIndex(Generic[K]):
    """Many trigger patterns, matched against one event at a time.

    ``entries`` are ``(key, topic, pattern)``: ``topic`` restricts the entry
    to documents whose ``doc["topic"]`` equals it (``None`` means any topic).
    Keys need not be unique; several entries with one key act as alternatives
    and the key is reported once. A pattern that does not compile raises
    :class:`PatternError` naming the entry's key.

    >>> index = TriggerIndex([("paid", "orders", {"type": ["order.paid"]})])
    >>> index.match({"topic": "orders", "type": "order.paid"})
    ['paid']
    """

    def __init__(self, entries: Iterable[tuple[K, str | None, Mapping[str, Any]]]) -> None:
        self._keys: list[K] = []
        compiler = PatternCompiler()
        patterns: list[CompiledPattern] = []
        by_topic: dict[str, list[_Item]] = {}
        any_topic: list[_Item] = []
        for ordinal, (key, topic, pattern) in enumerate(entries):
            try:
                compiled = compiler.compile(pattern)
            except PatternError as exc:
                raise exc.for_key(key) from None
            if topic is not None and not isinstance(topic, str):
                raise PatternError("<topic>", f"must be a string or None, got {topic!r}", key)
            self._keys.append(key)
            patterns.append(compiled)
            item = (ordinal, compiled.anchors, frozenset[FieldPath]())
            if topic is None:
                any_topic.append(item)
            else:
                by_topic.setdefault(topic, []).append(item)
        self._matchers = [compiled.matches for compiled in patterns]
        self._unique_keys = len(set(self._keys)) == len(self._keys)
        builder = _TreeBuilder(patterns, compiler)
        self._any_topic = builder.build(any_topic)
        self._topics = {
            topic: builder.build(sorted(items + any_topic)) for topic, items in by_topic.items()
        }

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, doc: Mapping[str, Any]) -> list[K]:
        """Keys of the entries whose topic and pattern match ``doc``, in entry order."""
        pending, matched, whole = self._walk(doc)
        for ordinal, matcher in pending:
            if matcher(doc):
                matched.append(ordinal)
        if whole:
            matchers = self._matchers
            matched.extend(ordinal for ordinal in whole if matchers[ordinal](doc))
        if not matched:
            return []
        keys = self._keys
        if len(matched) == 1:
            return [keys[matched[0]]]
        in_order = [keys[i] for i in sorted(set(matched))]
        return in_order if self._unique_keys else list(dict.fromkeys(in_order))

    def _walk(self, doc: Mapping[str, Any]) -> tuple[_Pending, list[int], list[int]]:
        """Residual candidates, certain matches and whole-pattern candidates (may repeat)."""
        topic = doc.get("topic")
        root = self._topics.get(topic, self._any_topic) if type(topic) is str else self._any_topic
        pending: _Pending = []
        certain: list[int] = []
        whole: list[int] = []
        _collect(root, doc, pending, certain, whole, True)
        return pending, certain, whole

    def _candidates(self, doc: Mapping[str, Any]) -> list[int]:
        """Ordinals of the entries whose patterns ``match`` evaluates for ``doc``, ascending."""
        pending, _, whole = self._walk(doc)
        return sorted({ordinal for ordinal, _ in pending} | set(whole))


class _TreeBuilder:
    def __init__(self, patterns: list[CompiledPattern], compiler: PatternCompiler) -> None:
        self.patterns = patterns
        self.compiler = compiler
        self.residuals: dict[tuple[int, frozenset[FieldPath]], _Matcher | None] = {}

    def build(self, items: list[_Item]) -> _Node:
        settled = [item for item in items if not item[1]]
        splittable = [item for item in items if item[1]]
        if len(items) <= _LEAF_SIZE:
            settled, splittable = items, []
        tables = tuple(
            (path[0], path[1:], {value: self.build(sub) for value, sub in postings.items()})
            for path, postings in _split(splittable).items()
        )
        pending: list[tuple[int, _Matcher]] = []
        certain: list[int] = []
        for ordinal, _, checked in settled:
            residual = self.residual(ordinal, checked)
            if residual is None:
                certain.append(ordinal)
            else:
                pending.append((ordinal, residual))
        whole = tuple(ordinal for ordinal, _, _ in settled)
        return _Node(tuple(pending), tuple(certain), whole, tables)

    def residual(self, ordinal: int, checked: frozenset[FieldPath]) -> _Matcher | None:
        """The entry's pattern minus the fields checked on the walk; None if nothing is left."""
        key = (ordinal, checked)
        if key not in self.residuals:
            pattern = self.patterns[ordinal]
            if checked:
                pattern = self.compiler.compile(residual_pattern(pattern.pattern, checked))
            self.residuals[key] = None if pattern.trivial else pattern.matches
        return self.residuals[key]


def _split(items: list[_Item]) -> dict[FieldPath, dict[str, list[_Item]]]:
    """File each item under its most selective anchor: field -> value -> items."""
    distinct: dict[FieldPath, set[str]] = {}
    for _, anchors, _ in items:
        for anchor in anchors:
            for path, values in anchor.alternatives:
                distinct.setdefault(path, set()).update(values)

    def cost(anchor: Anchor) -> float:
        # Expected share of events that reach the item through this anchor.
        return sum(len(values) / len(distinct[path]) for path, values in anchor.alternatives)

    postings: dict[FieldPath, dict[str, list[_Item]]] = {}
    for ordinal, anchors, checked in items:
        best = min(range(len(anchors)), key=lambda i: cost(anchors[i]))
        anchor = anchors[best]
        rest = anchors[:best] + anchors[best + 1 :]
        if anchor.field:
            ((path, _),) = anchor.alternatives
            checked = checked | {path}
        for path, values in anchor.alternatives:
            table = postings.setdefault(path, {})
            for value in values:
                table.setdefault(value, []).append((ordinal, rest, checked))
    return postings


def _collect(
    node: _Node,
    doc: Mapping[str, Any],
    pending: _Pending,
    certain: list[int],
    whole: list[int],
    plain: bool,
) -> None:
    """Gather candidates below ``node``; ``plain`` says no array was crossed to get here."""
    if plain:
        if node.pending:
            pending.extend(node.pending)
        if node.certain:
            certain.extend(node.certain)
    elif node.whole:
        whole.extend(node.whole)
    for head, tail, table in node.tables:
        value = doc.get(head)
        for key in tail:
            if type(value) is dict:
                value = value.get(key)
            elif type(value) is list:
                value = _field_of_each(value, key)
            else:
                value = None
                break
        if type(value) is str:
            child = table.get(value)
            if child is None:
                continue
            if child.tables:
                _collect(child, doc, pending, certain, whole, plain)
            # Most children are leaves: take their candidates without a call.
            elif plain:
                pending.extend(child.pending)
                certain.extend(child.certain)
            else:
                whole.extend(child.whole)
        elif type(value) is list:
            for string in _strings_in(value):
                child = table.get(string)
                if child is not None:
                    _collect(child, doc, pending, certain, whole, False)


def _field_of_each(items: list[Any], key: str) -> list[Any]:
    """``key`` of every object in an event array, arrays flattened (EventBridge style)."""
    values: list[Any] = []
    for item in items:
        if type(item) is dict:
            if key in item:
                values.append(item[key])
        elif type(item) is list:
            values.extend(_field_of_each(item, key))
    return values


def _strings_in(items: list[Any]) -> set[str]:
    strings: set[str] = set()
    for item in items:
        if type(item) is str:
            strings.add(item)
        elif type(item) is list:
            strings.update(_strings_in(item))
    return strings
