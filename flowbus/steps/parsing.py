"""Raw steps validated by the model their `type` registers, with problems that name the
step and the field.

The models come from the step registry (`flowbus.steps.registry`), which registers them
here when it loads; nested steps (parallel branches) are parsed through here too, so a
step type with nested steps need not import the registry that imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from flowbus.definitions.errors import Problem
from flowbus.definitions.step import StepModel

_MODELS: dict[str, type[StepModel]] = {}


def register_step_models(models: Mapping[str, type[StepModel]]) -> None:
    """Make `type:` names parse with their models (the step registry calls this)."""
    _MODELS.update(models)


class StepDefinitionError(ValueError):
    """Steps that do not validate; `problems` name each step and field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.render(None).removeprefix("<definition>: ") for p in problems))


def parse_steps(raw_steps: list[Any]) -> list[StepModel]:
    """Validate raw steps, each with the model its `type` registers; report every problem."""
    steps: list[StepModel] = []
    problems: list[Problem] = []
    for index, raw in enumerate(raw_steps):
        try:
            steps.append(parse_step(raw, index))
        except StepDefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise StepDefinitionError(problems)
    return steps


def parse_step(raw: Any, index: int) -> StepModel:
    """Validate one raw step with the model its `type` registers."""
    if isinstance(raw, StepModel):
        return raw
    if not isinstance(raw, dict):
        raise StepDefinitionError([Problem("a step must be an object", field=f"steps[{index}]")])
    step_id = raw.get("id", raw.get("stepId"))
    label = step_id if isinstance(step_id, str) else f"steps[{index}]"
    kind = raw.get("type")
    if kind not in _MODELS:
        known = ", ".join(sorted(_MODELS))
        message = f"unknown step type {kind!r}; known: {known}"
        raise StepDefinitionError([Problem(message, field="type", step_id=label)])
    try:
        return _MODELS[kind].model_validate(raw)
    except ValidationError as exc:
        raise StepDefinitionError(_problems(exc, label)) from None


def _problems(exc: ValidationError, step_id: str) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        if _wrong_union_member(err):
            continue
        message = str(err["msg"]).removeprefix("Value error, ")
        loc = [str(p) for p in err["loc"] if not _union_member(p)]
        if err["type"] == "value_error" and not loc:
            # Model-level checks say "field: message" themselves; several are joined by "; ".
            for part in message.split("; "):
                field, sep, detail = part.partition(": ")
                if sep and " " not in field:
                    problems.append(Problem(detail, field=field, step_id=step_id))
                else:
                    problems.append(Problem(part, step_id=step_id))
            continue
        if _nested_step_problem(err):
            nested = err.get("ctx", {}).get("error")
            if isinstance(nested, StepDefinitionError):
                problems.extend(nested.problems)
                continue
        problems.append(Problem(message, field=".".join(loc) or None, step_id=step_id))
    return _unique(problems)


def _wrong_union_member(err: Any) -> bool:
    # For `str | list[Transition]` given a list, pydantic also reports that it is not a
    # string: noise, the other member's error is the real one.
    tagged = any(_union_member(p) for p in err["loc"])
    return tagged and str(err["type"]).endswith("_type")


def _union_member(part: Any) -> bool:
    # pydantic names the union member it tried ("str", "list[Transition]", "int").
    return isinstance(part, str) and (part in {"str", "int", "bool"} or "[" in part)


def _nested_step_problem(err: Any) -> bool:
    return isinstance(err.get("ctx", {}).get("error"), StepDefinitionError)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
