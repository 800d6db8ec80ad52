"""A definition's step graph as Mermaid: nodes shaped by step type, edges labelled with
their conditions, parallel steps as subgraphs, failure routes dotted."""

from __future__ import annotations

from typing import Any

from flowbus.definitions.loader import validate_definition
from flowbus.definitions.mermaid import to_mermaid


def log(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": "log", "config": {"message": "m"}, **extra}


def chart(*steps: dict[str, Any], **fields: Any) -> list[str]:
    return to_mermaid(
        validate_definition({"id": "wf", "steps": list(steps), **fields})
    ).splitlines()


def test_a_linear_workflow_runs_from_start_to_end() -> None:
    lines = chart(log("a", next="b"), log("b"))

    assert lines == [
        "flowchart TD",
        '  wf_start(("start"))',
        '  s_a["a<br/>log"]',
        '  s_b["b<br/>log"]',
        '  wf_end(("end"))',
        "  wf_start --> s_a",
        "  s_a --> s_b",
        "  s_b --> wf_end",
    ]


def test_conditions_branch_with_labelled_edges_and_escaped_expressions() -> None:
    lines = chart(
        {
            "id": "check",
            "type": "condition",
            "condition": 'input.x > 1 && input.y == "a"',
            "onTrue": "yes",
            "onFalse": "route",
        },
        {
            "id": "route",
            "type": "condition",
            "next": [{"to": "yes", "condition": "input.z < 3"}, {"to": "no"}],
        },
        log("yes"),
        log("no"),
        startAt="check",
    )

    assert '  s_check{"check<br/>condition"}' in lines
    assert '  s_check -->|"true"| s_yes' in lines
    assert '  s_check -->|"false"| s_route' in lines
    assert '  s_route -->|"input.z #lt; 3"| s_yes' in lines
    assert '  s_route -->|"otherwise"| s_no' in lines


def test_parallel_branches_are_subgraphs_inside_the_parallel_step() -> None:
    lines = chart(
        {
            "id": "fan",
            "type": "parallel",
            "branches": [
                {"id": "left", "steps": [log("l1", next="l2"), log("l2")]},
                {"id": "right", "steps": [log("r1")]},
            ],
            "next": "after",
        },
        log("after"),
    )

    start = lines.index('  subgraph s_fan ["fan (parallel, join: all)"]')
    assert lines[start + 1 : start + 11] == [
        "    direction TB",
        '    subgraph b_fan__left ["branch left"]',
        '      s_l1["l1<br/>log"]',
        '      s_l2["l2<br/>log"]',
        "    end",
        '    subgraph b_fan__right ["branch right"]',
        '      s_r1["r1<br/>log"]',
        "    end",
        "  end",
        '  s_after["after<br/>log"]',
    ]
    assert "  s_l1 --> s_l2" in lines
    assert "  s_fan --> s_after" in lines
    assert not any(line.startswith("  s_l2 -->") for line in lines), "a branch just ends"


def test_failure_routes_and_timeouts_are_dotted() -> None:
    lines = chart(
        {
            "id": "call",
            "type": "action",
            "action": "webhook",
            "config": {"url": "https://example.com"},
            "next": "pause",
            "onFailure": {
                "action": "continue",
                "nextStepId": "repair",
                "errorHandler": {"conditions": [{"errorType": "HttpError", "nextStepId": "alert"}]},
            },
        },
        {
            "id": "pause",
            "type": "wait",
            "duration": "PT1S",
            "timeout": "PT5S",
            "onTimeout": "alert",
            "next": "done",
        },
        log("repair", next="done"),
        log("alert", next="done"),
        log("done"),
        startAt="call",
    )

    assert '  s_call -.->|"HttpError"| s_alert' in lines
    assert '  s_call -.->|"on failure"| s_repair' in lines
    assert '  s_pause{{"pause<br/>wait"}}' in lines
    assert '  s_pause -.->|"timeout"| s_alert' in lines


def test_step_ids_that_collide_after_cleaning_get_distinct_nodes() -> None:
    lines = chart(log("a-b", next="a.b"), log("a.b"))

    assert '  s_a_b["a-b<br/>log"]' in lines
    assert '  s_a_b_2["a.b<br/>log"]' in lines
    assert "  s_a_b --> s_a_b_2" in lines
