"""The definitions a worker runs with: the active ones behind a compiled trigger index,
and every version running instances need, compiled once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flowbus.definitions.inputs import InputValidators
from flowbus.definitions.model import WorkflowDefinition
from flowbus.definitions.triggers import Trigger
from flowbus.expressions import Path, PathError
from flowbus.matching.index import TriggerIndex


@dataclass(frozen=True, slots=True)
class WaitProbe:
    """What a waiting step listens for: events of `event_type` on a topic, keyed by `match`."""

    event_type: str | None
    match: Path


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    definition: WorkflowDefinition
    trigger: Trigger


class DefinitionCatalog:
    """Active definitions indexed by trigger, plus a cache of compiled versions."""

    def __init__(self, active: Iterable[WorkflowDefinition] = ()) -> None:
        self._versions: dict[tuple[str, int], WorkflowDefinition] = {}
        self._inputs = InputValidators()
        self._active: list[WorkflowDefinition] = []
        self._index: TriggerIndex[tuple[int, int]] = TriggerIndex([])
        self._probes: dict[str, list[WaitProbe]] = {}
        self.replace_active(active)

    def replace_active(self, active: Iterable[WorkflowDefinition]) -> None:
        """Swap in a new set of active definitions and rebuild the trigger index."""
        definitions = sorted(active, key=lambda d: d.id)
        entries = []
        for d_index, definition in enumerate(definitions):
            self.remember(definition)
            for t_index, trigger in enumerate(definition.triggers):
                pattern = trigger.event_pattern()
                if pattern is not None:
                    entries.append(((d_index, t_index), trigger.topic, pattern))
        self._index = TriggerIndex(entries)
        self._active = definitions

    @property
    def active(self) -> list[WorkflowDefinition]:
        return list(self._active)

    def remember(self, definition: WorkflowDefinition) -> None:
        assert definition.version is not None
        self._versions[(definition.id, definition.version)] = definition

    def version(self, workflow_id: str, version: int) -> WorkflowDefinition | None:
        return self._versions.get((workflow_id, version))

    def match(self, document: dict[str, Any]) -> list[TriggerMatch]:
        """Definitions whose triggers match the event document: one match per workflow."""
        seen: set[int] = set()
        matches = []
        for d_index, t_index in self._index.match(document):
            if d_index in seen:
                continue
            seen.add(d_index)
            definition = self._active[d_index]
            matches.append(TriggerMatch(definition, definition.triggers[t_index]))
        return matches

    def set_wait_probes(
        self,
        documents: Iterable[dict[str, Any]],
        run_time: Iterable[tuple[str, str, str | None]] = (),
    ) -> None:
        """Collect what every stored version's event waits listen for (running instances
        may be on any version), and the (topic, match, type) of waits chosen at run time."""
        declared = (
            (str(event.get("topic")), event["match"], event.get("type"))
            for document in documents
            for step in _all_steps(document.get("steps", []))
            if step.get("type") == "wait"
            and isinstance(event := step.get("event"), dict)
            and isinstance(event.get("match"), str)
        )
        found: dict[str, dict[tuple[str | None, str], WaitProbe]] = {}
        for topic, match, event_type in [*declared, *run_time]:
            try:
                probe = WaitProbe(event_type, Path(match))
            except PathError:
                continue
            found.setdefault(topic, {})[(probe.event_type, probe.match.source)] = probe
        self._probes = {topic: list(probes.values()) for topic, probes in found.items()}

    def wait_topics(self) -> set[str]:
        return set(self._probes)

    def probes(self, topic: str) -> list[WaitProbe]:
        return self._probes.get(topic, [])

    def input_errors(self, definition: WorkflowDefinition, value: Any) -> list[str]:
        """Violations of the definition's input schema (compiled once per version)."""
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '<input>'}: "
            + _quoted_briefly(error.message)
            for error in self._inputs.violations(definition, value)
        ]


def _quoted_briefly(message: str, limit: int = 300) -> str:
    """jsonschema quotes the offending value whole; a reason needs only its start."""
    return (
        message if len(message) <= limit else f"{message[:limit]}…(+{len(message) - limit} chars)"
    )


def _all_steps(steps: Any) -> Iterable[dict[str, Any]]:
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict):
            yield step
            for branch in step.get("branches", []) or []:
                if isinstance(branch, dict):
                    yield from _all_steps(branch.get("steps"))
