"""A definition's step graph as a Mermaid flowchart.

One node per step, shaped by its type; a parallel step is a subgraph holding one subgraph
per branch. Solid edges are the normal flow (labelled with their condition), dotted edges
are failure and timeout routes. The workflow starts at `start` and ends at `end`.
"""

from __future__ import annotations

import re

from flowbus.definitions.model import WorkflowDefinition
from flowbus.definitions.step import StepModel
from flowbus.steps.action import ActionStepModel
from flowbus.steps.approval import ApprovalStepModel
from flowbus.steps.condition import ConditionStepModel
from flowbus.steps.parallel import ParallelStepModel
from flowbus.steps.subflow import SubflowStepModel
from flowbus.steps.wait import WaitStepModel

_SHAPES = {
    "condition": ('{"', '"}'),
    "wait": ('{{"', '"}}'),
    "approval": ('[/"', '"/]'),
    "subflow": ('[["', '"]]'),
}
_DEFAULT_SHAPE = ('["', '"]')
_LABEL_LIMIT = 48
# "#" first: the other entities start with it.
_ENTITIES = (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;"))
START, END = "wf_start", "wf_end"


def to_mermaid(definition: WorkflowDefinition) -> str:
    """The Mermaid `flowchart` source of `definition`'s steps."""
    if definition.code_first:
        return f'flowchart TD\n  {START}(("start")) --> code["code (SDK worker)"]\n'
    return _Chart(definition).render()


class _Chart:
    def __init__(self, definition: WorkflowDefinition) -> None:
        self.definition = definition
        self.nodes: dict[str, str] = {}
        self._taken: set[str] = set()
        for step_id in definition.step_map():
            self.nodes[step_id] = self._unique("s_" + _slug(step_id))
        self.lines = ["flowchart TD", f'  {START}(("start"))']
        self.edges: list[str] = [f"  {START} --> {self.nodes[definition.first_step_id]}"]

    def render(self) -> str:
        self._scope(list(self.definition.steps), depth=1, top=True)
        self.lines.append(f'  {END}(("end"))')
        return "\n".join([*self.lines, *self.edges]) + "\n"

    def _unique(self, base: str) -> str:
        candidate, n = base, 1
        while candidate in self._taken:
            n += 1
            candidate = f"{base}_{n}"
        self._taken.add(candidate)
        return candidate

    def _scope(self, steps: list[StepModel], depth: int, top: bool) -> None:
        pad = "  " * depth
        for step in steps:
            node = self.nodes[step.id]
            if isinstance(step, ParallelStepModel):
                title = _text(f"{step.id} (parallel, join: {step.join})")
                self.lines.append(f'{pad}subgraph {node} ["{title}"]')
                self.lines.append(f"{pad}  direction TB")
                for branch_id, nested in step.branches():
                    name = _text(f"branch {branch_id}")
                    group = self._unique(f"b_{_slug(step.id)}__{_slug(branch_id)}")
                    self.lines.append(f'{pad}  subgraph {group} ["{name}"]')
                    self._scope(nested, depth + 2, top=False)
                    self.lines.append(f"{pad}  end")
                self.lines.append(f"{pad}end")
            else:
                opening, closing = _SHAPES.get(step.type, _DEFAULT_SHAPE)
                self.lines.append(f"{pad}{node}{opening}{_label(step)}{closing}")
            self._edges(step, top)

    def _edges(self, step: StepModel, top: bool) -> None:
        ends = False
        flows = _normal_flow(step)
        for target, label in flows:
            if target is None:
                ends = True
            else:
                self._edge(step.id, self.nodes[target], label)
        if not flows:
            ends = True
        if ends and top:
            self._edge(step.id, END, None)
        for target, label in _exceptional_flow(step):
            self._edge(step.id, self.nodes[target], label, dotted=True)

    def _edge(self, step_id: str, target: str, label: str | None, dotted: bool = False) -> None:
        arrow = "-.->" if dotted else "-->"
        text = f'|"{_text(label)}"|' if label else ""
        self.edges.append(f"  {self.nodes[step_id]} {arrow}{text} {target}")


def _normal_flow(step: StepModel) -> list[tuple[str | None, str | None]]:
    """Where the step goes when it completes: (step id or None for the end, label)."""
    flows: list[tuple[str | None, str | None]] = []
    if isinstance(step, ConditionStepModel) and (
        step.condition is not None or step.rules is not None
    ):
        return [(step.on_true, "true"), (step.on_false, "false")]
    if isinstance(step.next, str):
        flows.append((step.next, None))
    elif isinstance(step.next, list):
        for transition in step.next:
            condition = transition.condition.source if transition.condition else "otherwise"
            flows.append((transition.to, condition))
    else:
        flows.append((None, None))
    if isinstance(step, ApprovalStepModel) and step.on_reject is not None:
        flows.append((step.on_reject, "rejected"))
    return flows


def _exceptional_flow(step: StepModel) -> list[tuple[str, str]]:
    """Failure routes and timeouts: (step id, label)."""
    flows: list[tuple[str, str]] = []
    if isinstance(step, WaitStepModel) and step.on_timeout is not None:
        flows.append((step.on_timeout, "timeout"))
    handler = step.on_failure
    if handler is not None:
        if handler.error_handler is not None:
            for route in handler.error_handler.conditions:
                label = " ".join(x for x in (route.error_type, route.error_code) if x) or "error"
                flows.append((route.next_step_id, label))
        if handler.next_step_id is not None:
            flows.append((handler.next_step_id, "on failure"))
    return flows


def _label(step: StepModel) -> str:
    """Step id over what it does: the action's name, the subflow's workflow, or the type."""
    if isinstance(step, ActionStepModel):
        detail = step.action
    elif isinstance(step, SubflowStepModel):
        detail = f"subflow: {step.workflow}"
    else:
        detail = step.type
    return f"{_text(step.id)}<br/>{_text(detail)}"


def _text(value: str) -> str:
    """Safe inside a quoted Mermaid label: markup characters as entities, long text cut."""
    if len(value) > _LABEL_LIMIT:
        value = value[: _LABEL_LIMIT - 1] + "…"
    for char, entity in _ENTITIES:
        value = value.replace(char, entity)
    return value


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", value)
