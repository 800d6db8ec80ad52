"""The JSON workflow definition format of seed 004, as that format writes it.

- `version: "1.2.0"`: a semantic version is kept as the definition's `versionLabel`; the
  store numbers versions 1, 2, 3 as for any definition, and refuses a label that is not
  greater than the labels already stored (see `SemanticVersion`).
- `triggers[].eventPattern`: an event type (`order.created`; `*` matches any run of
  characters, `order.*`), or an EventBridge-style pattern written as a JSON object
  (in a string or as an object). Without a `topic` the trigger takes matching events on
  every source topic.
- `parallelBranches: [{branchId, steps}]` make the step a `parallel` step with those
  branches (`join: all`).
- `stepId`, `next: [{nextStepId, condition}]`, `retryPolicy`, `timeout`, step-level
  `onFailure` (`continue | stop | retry`, `errorHandler`), `uiComponents` and
  `executionLog` are flowbus's own words already.

`taskId` references are left as they are: the task library completes those steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from typing import Any

import orjson

from flowbus.definitions.errors import Problem

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


@total_ordering
@dataclass(frozen=True, slots=True, eq=False)
class SemanticVersion:
    """A version label ordered by Semantic Versioning 2.0 precedence: numbers compare as
    numbers, a pre-release (`1.2.0-rc.1`) comes before its release, build metadata
    (`+build.5`) does not count."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SemanticVersion:
        found = _SEMVER.match(text)
        if found is None:
            raise ValueError(
                f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0 or 2.0.0-rc.1)"
            )
        pre = tuple(found.group(4).split(".")) if found.group(4) else ()
        return cls(int(found.group(1)), int(found.group(2)), int(found.group(3)), pre)

    def _key(self) -> tuple[Any, ...]:
        # A release sorts after every pre-release of the same numbers; numeric identifiers
        # sort before alphanumeric ones and compare as numbers.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemanticVersion) and self._key() == other._key()

    def __lt__(self, other: SemanticVersion) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def label_conflict(label: str, stored: list[tuple[int, str | None]]) -> str | None:
    """Why a new version labelled `label` cannot follow the `stored` (version, label)
    pairs, or None when it can: labels only grow, and one label names one version."""
    new = SemanticVersion.parse(label)
    labelled = [(version, SemanticVersion.parse(text), text) for version, text in stored if text]
    for version, _, text in labelled:
        if text == label:
            return (
                f"version label {label} is already stored as version {version} with other "
                "content; give the change a new label"
            )
    if not labelled:
        return None
    version, highest, text = max(labelled, key=lambda item: item[1])
    if new <= highest:
        return (
            f"version label {label} does not come after {text} (version {version}); "
            "labels must increase"
        )
    return None


def convert(document: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """The document in flowbus's words, and the problems that keep parts from converting."""
    result = dict(document)
    problems: list[Problem] = []
    version = document.get("version")
    if isinstance(version, str):
        del result["version"]
        try:
            SemanticVersion.parse(version)
        except ValueError as exc:
            problems.append(Problem(str(exc), field="version"))
        else:
            if "versionLabel" in document and document["versionLabel"] != version:
                problems.append(
                    Problem("differs from versionLabel: give the label once", field="version")
                )
            result["versionLabel"] = version
    triggers = document.get("triggers")
    if isinstance(triggers, list):
        result["triggers"] = [
            _trigger(trigger, index, problems) for index, trigger in enumerate(triggers)
        ]
    steps = document.get("steps")
    if isinstance(steps, list):
        result["steps"] = [_step(step, index, problems) for index, step in enumerate(steps)]
    return result, problems


def _trigger(trigger: Any, index: int, problems: list[Problem]) -> Any:
    if not isinstance(trigger, dict) or "eventPattern" not in trigger:
        return trigger
    field = f"triggers.{index}.eventPattern"
    result = {k: v for k, v in trigger.items() if k != "eventPattern"}
    given = trigger["eventPattern"]
    if isinstance(given, str) and given.strip().startswith("{"):
        try:
            given = orjson.loads(given)
        except orjson.JSONDecodeError as exc:
            problems.append(Problem(f"not a JSON pattern: {exc}", field=field))
            return result
    if isinstance(given, dict):
        if "pattern" in trigger:
            problems.append(Problem("give eventPattern or pattern, not both", field=field))
        result["pattern"] = given
    elif isinstance(given, str) and given.strip():
        event_type = given.strip()
        if "type" in trigger:
            problems.append(Problem("give eventPattern or type, not both", field=field))
        elif "*" in event_type:
            if "pattern" in trigger:
                problems.append(Problem("give eventPattern or pattern, not both", field=field))
            result["pattern"] = {"type": [{"wildcard": event_type}]}
        else:
            result["type"] = event_type
    else:
        problems.append(Problem("must be an event type or a pattern (a JSON object)", field=field))
    return result


def _step(step: Any, index: int, problems: list[Problem]) -> Any:
    if not isinstance(step, dict):
        return step
    named = step.get("id", step.get("stepId"))
    step_id = named if isinstance(named, str) else f"steps[{index}]"
    result = dict(step)
    if "parallelBranches" in step:
        branches = result.pop("parallelBranches")
        clash = [key for key in ("branches", "taskId", "action") if key in step]
        if step.get("type", "parallel") != "parallel":
            clash.append("type")
        if clash:
            problems.append(
                Problem(
                    f"a step with parallel branches runs only its branches; it takes no "
                    f"{', '.join(clash)} (run a task as a step inside a branch)",
                    field="parallelBranches",
                    step_id=step_id,
                )
            )
            return result
        result["type"] = "parallel"
        result["branches"] = _branches(branches, step_id, problems)
    elif isinstance(step.get("branches"), list):
        result["branches"] = [
            {**b, "steps": [_step(s, i, problems) for i, s in enumerate(b["steps"])]}
            if isinstance(b, dict) and isinstance(b.get("steps"), list)
            else b
            for b in step["branches"]
        ]
    return result


def _branches(branches: Any, step_id: str, problems: list[Problem]) -> Any:
    if not isinstance(branches, list):
        problems.append(Problem("must be a list of {branchId, steps}", "parallelBranches", step_id))
        return branches
    converted: list[Any] = []
    for position, branch in enumerate(branches):
        if not isinstance(branch, dict):
            converted.append(branch)
            continue
        where = f"parallelBranches.{position}"
        result = {k: v for k, v in branch.items() if k != "branchId"}
        if "branchId" in branch:
            if "id" in branch and branch["id"] != branch["branchId"]:
                problems.append(
                    Problem("give branchId or id, not both", f"{where}.branchId", step_id)
                )
            result["id"] = branch["branchId"]
        elif "id" not in branch:
            problems.append(Problem("Field required", f"{where}.branchId", step_id))
        steps = branch.get("steps")
        if isinstance(steps, list):
            result["steps"] = [_step(s, i, problems) for i, s in enumerate(steps)]
        converted.append(result)
    return converted
