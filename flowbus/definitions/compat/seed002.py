"""Step documents as template-based workflow services write them (seed 002).

- An action step names its action inside its config: `config: {action: send_email, to: …}`
  becomes `action: send_email, config: {to: …}`.
- A condition step lists `conditions: [{field, operator, value}]` (or one such rule as its
  `config`), combined by `match: all|any`: flowbus's `rules`, with the same operators.
  A field is a variable name (`email`), read as `variables.email`; a path that starts at
  one of flowbus's scopes (`input.x`, `variables.x`, `steps.…`) stays as it is.
- `next_steps` lists the successors: of a condition, the step when it holds and the step
  when it does not (`onTrue`, `onFalse`); of any other step, the one next step.
- Instances there start with their input as their variables (templates say
  `{{variables.email}}`), so each variable the document reads and does not map itself is
  mapped from the input: `context: {email: input.email}`.

Only documents with at least one such step are converted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flowbus.definitions.errors import Problem

SCOPES = frozenset({"input", "variables", "context", "steps", "trigger", "instance"})
_VARIABLE = re.compile(r"\{\{\s*variables\.([A-Za-z_][A-Za-z0-9_\-]*)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RULE_KEYS = frozenset({"field", "operator", "value"})


def applies(document: dict[str, Any]) -> bool:
    """Whether any step of the document is written in seed 002's shape."""
    return any(_seed_step(step) for step in _all_steps(document.get("steps")))


def _seed_step(step: dict[str, Any]) -> bool:
    config = step.get("config")
    in_config = isinstance(config, dict) and (
        ("action" in config and "action" not in step)
        or (step.get("type") == "condition" and set(config) >= _RULE_KEYS)
    )
    return "next_steps" in step or "conditions" in step or in_config


def convert(document: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """The document in flowbus's words, or the problems that keep it from being converted."""
    if not applies(document):
        return document, []
    problems: list[Problem] = []
    variables: list[str] = []
    steps = document.get("steps")
    result = dict(document)
    assert isinstance(steps, list)
    result["steps"] = [_step(step, problems, variables) for step in steps]
    variables.extend(_template_variables(result["steps"]))
    context = document.get("context")
    mapped = dict(context) if isinstance(context, dict) else {}
    for name in variables:
        mapped.setdefault(name, f"input.{_quoted(name)}")
    if mapped:
        result["context"] = mapped
    return result, problems


def _step(step: Any, problems: list[Problem], variables: list[str]) -> Any:
    if not isinstance(step, dict):
        return step
    named = step.get("id", step.get("stepId"))
    step_id = named if isinstance(named, str) else None
    result = dict(step)
    config = step.get("config")
    if isinstance(config, dict) and "action" in config and "action" not in step:
        result["action"] = config["action"]
        result["config"] = {k: v for k, v in config.items() if k != "action"}
    if step.get("type") == "condition":
        _condition(result, problems, variables, step_id)
    if "next_steps" in step:
        _successors(result, problems, step_id)
    branches = step.get("branches")
    if isinstance(branches, list):
        result["branches"] = [
            {**b, "steps": [_step(s, problems, variables) for s in b["steps"]]}
            if isinstance(b, dict) and isinstance(b.get("steps"), list)
            else b
            for b in branches
        ]
    return result


def _condition(
    step: dict[str, Any], problems: list[Problem], variables: list[str], step_id: str | None
) -> None:
    config = step.get("config")
    if "conditions" in step:
        rules = step.pop("conditions")
        if "rules" in step:
            problems.append(Problem("give conditions or rules, not both", "conditions", step_id))
            return
    elif isinstance(config, dict) and set(config) == _RULE_KEYS:
        rules = [config]
        del step["config"]
    else:
        return
    if not isinstance(rules, list):
        problems.append(
            Problem("must be a list of {field, operator, value}", "conditions", step_id)
        )
        return
    step["rules"] = [_rule(rule, variables) for rule in rules]


def _rule(rule: Any, variables: list[str]) -> Any:
    if not isinstance(rule, dict) or not isinstance(rule.get("field"), str):
        return rule  # the rule's model names what is wrong with it
    field = rule["field"].strip()
    head = re.split(r"[.\[]", field, maxsplit=1)[0]
    if head in SCOPES or not field:
        return rule
    variables.append(head)
    segments = field.split(".")
    if all(_IDENTIFIER.fullmatch(s) for s in segments):
        return {**rule, "field": f"variables.{field}"}
    return {**rule, "field": "variables." + ".".join(_quoted(s) for s in segments)}


def _successors(step: dict[str, Any], problems: list[Problem], step_id: str | None) -> None:
    successors = step.pop("next_steps")
    if not isinstance(successors, list) or not all(isinstance(s, str) for s in successors):
        problems.append(Problem("must be a list of step ids", "next_steps", step_id))
        return
    if "next" in step:
        problems.append(Problem("give next_steps or next, not both", "next_steps", step_id))
        return
    if step.get("type") == "condition":
        if len(successors) > 2:
            problems.append(
                Problem(
                    f"a condition has two successors (when it holds, when it does not); "
                    f"{len(successors)} given",
                    "next_steps",
                    step_id,
                )
            )
            return
        for key, target in zip(("onTrue", "onFalse"), successors, strict=False):
            step[key] = target
        return
    if len(successors) > 1:
        problems.append(
            Problem(
                f"a {step.get('type')} step goes on at one step; {len(successors)} given "
                "(run steps side by side in a parallel step)",
                "next_steps",
                step_id,
            )
        )
        return
    if successors:
        step["next"] = successors[0]


def _template_variables(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield from _VARIABLE.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _template_variables(item)
    elif isinstance(value, list):
        for item in value:
            yield from _template_variables(item)


def _quoted(name: str) -> str:
    return name if _IDENTIFIER.fullmatch(name) else '"' + name.replace('"', '\\"') + '"'


def _all_steps(steps: Any) -> Iterator[dict[str, Any]]:
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict):
            yield step
            for branch in step.get("branches", None) or []:
                if isinstance(branch, dict):
                    yield from _all_steps(branch.get("steps"))
