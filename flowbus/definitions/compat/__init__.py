"""Definition documents as other workflow systems write them, read in flowbus's language.

Each module converts one such shape (named after the seed document that describes it) and
is pure: it takes a raw document and returns a new one, with problems that name the step
and field for what it cannot convert. A conversion touches only keys flowbus does not
define (or, for context mappings, paths that could only ever read null), so a flowbus
document passes through unchanged, and converting a converted document changes nothing.
The loader converts every document before validating it, so files, `POST
/v1/definitions` and `flowbus definitions validate` all accept these shapes; the stored
version is the converted document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flowbus.definitions.compat import seed000, seed002, seed004
from flowbus.definitions.compat.seed004 import SemanticVersion, label_conflict
from flowbus.definitions.errors import Problem

__all__ = ["SemanticVersion", "convert_document", "label_conflict", "unresolved_tasks"]

Conversion = Callable[[dict[str, Any]], tuple[dict[str, Any], list[Problem]]]

# Seed 002's conversion adds context mappings, which seed 000's then checks.
_CONVERSIONS: tuple[Conversion, ...] = (seed004.convert, seed002.convert, seed000.convert)


def convert_document(document: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """`document` in flowbus's language, and every problem found converting it."""
    problems: list[Problem] = []
    for convert in _CONVERSIONS:
        document, found = convert(document)
        problems.extend(found)
    return document, problems


def unresolved_tasks(document: dict[str, Any]) -> Iterator[Problem]:
    """Steps that still reference a task: the task library replaces each such step with
    the task's action before the definition is validated, so one left here was not."""
    for step in _all_steps(document.get("steps")):
        if "taskId" in step:
            named = step.get("id", step.get("stepId"))
            yield Problem(
                f"task {step['taskId']!r} was not resolved: a step that references a task "
                "becomes the task's action when the definition is stored with the task "
                "library (`tasks`); store the task first",
                field="taskId",
                step_id=named if isinstance(named, str) else None,
            )


def _all_steps(steps: Any) -> Iterator[dict[str, Any]]:
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict):
            yield step
            for key in ("branches", "parallelBranches"):
                branches = step.get(key)
                for branch in branches if isinstance(branches, list) else []:
                    if isinstance(branch, dict):
                        yield from _all_steps(branch.get("steps"))
