"""Errors a definition author can hit: each names the definition, the step and the field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition."""

    message: str
    field: str | None = None
    step_id: str | None = None

    def render(self, definition_id: str | None) -> str:
        where = [definition_id or "<definition>"]
        if self.step_id:
            where.append(f"step {self.step_id!r}")
        if self.field:
            where.append(self.field)
        return f"{': '.join(where)}: {self.message}"


class DefinitionError(ValueError):
    """A definition that cannot be used, with every problem found."""

    def __init__(
        self, definition_id: str | None, problems: list[Problem], source: str | None = None
    ):
        self.definition_id = definition_id
        self.problems = problems
        self.source = source
        lines = [p.render(definition_id) for p in problems]
        prefix = f"{source}: " if source else ""
        super().__init__(
            prefix + ("; ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines))
        )


class DefinitionConflict(ValueError):
    """A stored version would change: versions are immutable once stored."""
