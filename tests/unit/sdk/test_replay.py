"""The replay core, driven by protocol dicts: no broker, no database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from flowbus.sdk import StepError, WorkflowContext, run_workflow_task, workflow

INSTANCE = "9d1c0000-0000-0000-0000-000000000001"


class Recorder:
    """An `emit` that keeps every record, as the broker would have acknowledged it."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, event_type: str, data: dict[str, Any]) -> None:
        self.records.append((event_type, data))

    def steps(self, *statuses: str) -> list[tuple[str, str]]:
        return [
            (d["name"], d["status"])
            for t, d in self.records
            if t == "flowbus.result.step" and (not statuses or d["status"] in statuses)
        ]


def task(
    history: list[dict[str, Any]] | None = None,
    reason: str = "start",
    input: Any = None,
    n: int = 1,
    now: str = "2026-12-01T10:00:02.004Z",
    workflow_id: str = "payments",
) -> dict[str, Any]:
    return {
        "taskId": f"{INSTANCE}:{n}",
        "instanceId": INSTANCE,
        "workflowId": workflow_id,
        "version": 1,
        "input": input if input is not None else {"amount": 10},
        "startedAt": "2026-12-01T10:00:00.000Z",
        "now": now,
        "reason": reason,
        "history": history or [],
    }


def completed(seq: int, name: str, result: Any) -> dict[str, Any]:
    return {"kind": "step", "name": name, "seq": seq, "status": "completed", "result": result}


def waited(seq: int, name: str, kind: str, result: Any) -> dict[str, Any]:
    return {
        "kind": "wait",
        "name": name,
        "seq": seq,
        "waitKind": kind,
        "status": "completed",
        "result": result,
    }


class Order(BaseModel):
    amount: int


calls: Counter[str] = Counter()
undone: list[str] = []


def make_saga(fail_at: str | None = None, optional_fails: bool = False) -> Any:
    async def effect(name: str, amount: int) -> dict[str, Any]:
        calls[name] += 1
        if name == fail_at:
            raise ValueError(f"{name} broke")
        return {"done": name, "amount": amount}

    async def undo(result: dict[str, Any]) -> None:
        undone.append(result["done"])

    async def notify() -> None:
        calls["notify"] += 1
        raise ConnectionError("mail down")

    @workflow("payments", version=1)
    async def payments(ctx: WorkflowContext, order: Order) -> dict[str, Any]:
        a = await ctx.step("reserve", effect, "reserve", order.amount).compensate(undo).run()
        b = await ctx.step("charge", effect, "charge", order.amount).compensate(undo).run()
        if optional_fails:
            assert await ctx.step("notify", notify).optional().run() is None
        c = await ctx.step("ship", effect, "ship", order.amount).compensate(undo).run()
        return {"steps": [a["done"], b["done"], c["done"]]}

    return payments


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    undone.clear()


async def test_three_steps_complete_in_one_task() -> None:
    emit = Recorder()
    result = await run_workflow_task(make_saga(), task(), emit)
    assert result["outcome"] == "completed"
    assert result["output"] == {"steps": ["reserve", "charge", "ship"]}
    assert emit.steps() == [
        ("reserve", "started"),
        ("reserve", "completed"),
        ("charge", "started"),
        ("charge", "completed"),
        ("ship", "started"),
        ("ship", "completed"),
    ]
    seqs = [d["seq"] for t, d in emit.records if t == "flowbus.result.step"]
    assert seqs == [1, 1, 2, 2, 3, 3]
    assert emit.records[-1][0] == "flowbus.result.workflow"
    assert all(d["taskId"] == f"{INSTANCE}:1" for _, d in emit.records)


async def test_resume_returns_cached_results_without_running_steps() -> None:
    history = [
        completed(1, "reserve", {"done": "reserve", "amount": 10}),
        completed(2, "charge", {"done": "charge", "amount": 10}),
    ]
    emit = Recorder()
    result = await run_workflow_task(make_saga(), task(history, reason="resumed", n=2), emit)
    assert result["outcome"] == "completed"
    assert calls == Counter({"ship": 1})
    assert emit.steps() == [("ship", "started"), ("ship", "completed")]


async def test_failure_in_step_three_compensates_two_then_one() -> None:
    emit = Recorder()
    result = await run_workflow_task(make_saga(fail_at="ship"), task(), emit)
    assert undone == ["charge", "reserve"]
    assert emit.steps("failed", "compensated") == [
        ("ship", "failed"),
        ("charge", "compensated"),
        ("reserve", "compensated"),
    ]
    assert result["outcome"] == "compensated"
    assert result["error"]["type"] == "ValueError"


async def test_a_failing_compensation_fails_the_workflow() -> None:
    async def boom(result: Any) -> None:
        raise RuntimeError("cannot undo")

    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: dict[str, Any]) -> None:
        await ctx.step("one", lambda: 1).compensate(boom).run()
        await ctx.step("two", lambda: 1 / 0).run()

    emit = Recorder()
    result = await run_workflow_task(flow, task(), emit)
    assert result["outcome"] == "failed"
    assert result["error"]["type"] == "ZeroDivisionError"
    assert ("one", "compensation_failed") in emit.steps()


async def test_optional_failure_continues_without_compensation() -> None:
    emit = Recorder()
    result = await run_workflow_task(make_saga(optional_fails=True), task(), emit)
    assert result["outcome"] == "completed"
    assert ("notify", "failed") in emit.steps()
    failed = next(d for t, d in emit.records if d.get("status") == "failed")
    assert failed["optional"] is True
    assert failed["error"] == {"type": "ConnectionError", "message": "mail down"}
    assert undone == []


async def test_retry_runs_again_then_succeeds() -> None:
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("flaky")
        return "ok"

    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: Any) -> Any:
        return await ctx.step("flaky", flaky).retry(max_attempts=3, delay=0.001).run()

    emit = Recorder()
    result = await run_workflow_task(flow, task(), emit)
    assert result == {**result, "outcome": "completed", "output": "ok"}
    started = [d["attempt"] for t, d in emit.records if d.get("status") == "started"]
    assert started == [1, 2, 3]


async def test_step_timeout_fails_the_attempt() -> None:
    import asyncio

    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: Any) -> Any:
        try:
            await ctx.step("slow", asyncio.sleep, 1).timeout(0.01).run()
        except StepError as exc:
            return exc.type

    result = await run_workflow_task(flow, task(), Recorder())
    assert result["output"] == "TimeoutError"


async def test_backoff_strategies() -> None:
    ctx = WorkflowContext(task(), Recorder())
    step = ctx.step("x", lambda: 1).retry(5, delay=1, multiplier=2, max_delay=5)
    assert [step.backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    fixed = ctx.step("y", lambda: 1).retry(5, delay="PT2S", strategy="fixed")
    assert [fixed.backoff(n) for n in (1, 2, 3)] == [2, 2, 2]


@workflow("waits")
async def waits(ctx: WorkflowContext, input: Any) -> dict[str, Any]:
    await ctx.step("first", lambda: 1).run()
    await ctx.sleep("PT2S", name="nap")
    event = await ctx.wait_for_event(
        "payments", match="data.orderId", key="o-1", type="paid", timeout=60, name="paid"
    )
    decision = await ctx.approval(
        "refund", assignees=["alice", "bob"], quorum=2, deadline="PT1H", summary="Refund?"
    )
    child = await ctx.child("shipping", {"order": "o-1"}, version=2)
    return {"event": event, "decision": decision, "child": child}


WAIT_CASES = [
    ([], {"name": "nap", "seq": 2, "kind": "timer", "duration": "PT2S"}),
    (
        [waited(2, "nap", "timer", None)],
        {
            "name": "paid",
            "seq": 3,
            "kind": "event",
            "topic": "payments",
            "type": "paid",
            "match": "data.orderId",
            "key": "o-1",
            "timeout": "PT60S",
        },
    ),
    (
        [waited(2, "nap", "timer", None), waited(3, "paid", "event", {"id": "e1"})],
        {
            "name": "refund",
            "seq": 4,
            "kind": "approval",
            "assignees": ["alice", "bob"],
            "quorum": 2,
            "deadline": "PT1H",
            "summary": "Refund?",
        },
    ),
    (
        [
            waited(2, "nap", "timer", None),
            waited(3, "paid", "event", {"id": "e1"}),
            waited(4, "refund", "approval", {"decision": "approved"}),
        ],
        {
            "name": "child-5",
            "seq": 5,
            "kind": "child",
            "workflowId": "shipping",
            "version": 2,
            "input": {"order": "o-1"},
        },
    ),
]


@pytest.mark.parametrize(("recorded", "wait"), WAIT_CASES)
async def test_waits_end_the_task_with_their_spec(
    recorded: list[dict[str, Any]], wait: dict[str, Any]
) -> None:
    emit = Recorder()
    history = [completed(1, "first", 1), *recorded]
    result = await run_workflow_task(waits, task(history, workflow_id="waits"), emit)
    assert result["outcome"] == "waiting"
    assert result["wait"] == wait
    assert emit.steps() == []


async def test_waits_continue_with_their_recorded_results() -> None:
    history = [
        completed(1, "first", 1),
        waited(2, "nap", "timer", None),
        waited(3, "paid", "event", {"id": "e1"}),
        waited(4, "refund", "approval", {"decision": "approved"}),
        waited(5, "child-5", "child", {"shipped": True}),
    ]
    result = await run_workflow_task(waits, task(history, workflow_id="waits"), Recorder())
    assert result["outcome"] == "completed"
    assert result["output"] == {
        "event": {"id": "e1"},
        "decision": {"decision": "approved"},
        "child": {"shipped": True},
    }


async def test_failed_wait_raises_step_error() -> None:
    history = [
        completed(1, "first", 1),
        waited(2, "nap", "timer", None),
        {
            "kind": "wait",
            "name": "paid",
            "seq": 3,
            "waitKind": "event",
            "status": "failed",
            "error": {"type": "TimeoutError", "message": "no event"},
        },
    ]
    result = await run_workflow_task(waits, task(history, workflow_id="waits"), Recorder())
    assert result["outcome"] == "failed"
    assert result["error"] == {"type": "TimeoutError", "message": "no event"}


async def test_divergence_is_nondeterministic_naming_both() -> None:
    history = [completed(1, "reserve", {"done": "reserve"}), completed(2, "refund", {})]
    emit = Recorder()
    result = await run_workflow_task(make_saga(), task(history, reason="resumed"), emit)
    assert result["outcome"] == "nondeterministic"
    assert result["error"]["details"]["expected"] == "step 'refund'"
    assert result["error"]["details"]["found"] == "step 'charge'"
    assert "'refund'" in result["error"]["message"]
    assert "'charge'" in result["error"]["message"]
    assert emit.steps() == []
    assert calls == Counter()


async def test_a_swallowed_divergence_is_still_reported() -> None:
    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: Any) -> str:
        try:
            await ctx.step("other", lambda: 1).run()
        except BaseException:
            return "hidden"
        return "ran"

    result = await run_workflow_task(
        flow, task([completed(1, "reserve", 1)], reason="resumed"), Recorder()
    )
    assert result["outcome"] == "nondeterministic"


async def test_code_ending_before_the_history_is_nondeterministic() -> None:
    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: Any) -> str:
        await ctx.step("reserve", lambda: 1).run()
        return "short"

    history = [completed(1, "reserve", 1), completed(2, "charge", 2)]
    result = await run_workflow_task(flow, task(history, reason="resumed"), Recorder())
    assert result["outcome"] == "nondeterministic"
    assert result["error"]["details"]["found"] == "the end of the workflow"


async def test_wait_of_another_kind_is_nondeterministic() -> None:
    history = [completed(1, "first", 1), waited(2, "nap", "event", None)]
    result = await run_workflow_task(waits, task(history, workflow_id="waits"), Recorder())
    assert result["outcome"] == "nondeterministic"
    assert result["error"]["details"]["expected"] == "wait 'nap' (event)"
    assert result["error"]["details"]["found"] == "wait 'nap' (timer)"


async def test_cancel_runs_compensations_and_nothing_else() -> None:
    history = [
        completed(1, "reserve", {"done": "reserve", "amount": 10}),
        completed(2, "charge", {"done": "charge", "amount": 10}),
    ]
    emit = Recorder()
    result = await run_workflow_task(make_saga(), task(history, reason="cancel", n=3), emit)
    assert calls == Counter()
    assert undone == ["charge", "reserve"]
    assert emit.steps() == [("charge", "compensated"), ("reserve", "compensated")]
    assert result["outcome"] == "compensated"


async def test_cancel_while_waiting_compensates() -> None:
    seen: list[str] = []

    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: Any) -> None:
        await ctx.step("hold", lambda: "h").compensate(seen.append).run()
        await ctx.sleep(5)
        await ctx.step("after", lambda: seen.append("after")).run()

    result = await run_workflow_task(
        flow, task([completed(1, "hold", "h")], reason="cancel"), Recorder()
    )
    assert result["outcome"] == "compensated"
    assert seen == ["h"]


async def test_workflow_timeout_compensates() -> None:
    @workflow("payments", timeout="PT1S")
    async def flow(ctx: WorkflowContext, input: Any) -> None:
        await ctx.step("hold", lambda: "h").compensate(undone.append).run()
        await ctx.step("more", lambda: 1).run()

    result = await run_workflow_task(
        flow, task([completed(1, "hold", "h")], reason="resumed"), Recorder()
    )
    assert result["outcome"] == "compensated"
    assert result["error"]["type"] == "TimeoutError"
    assert undone == ["h"]


async def test_unsupported_version() -> None:
    emit = Recorder()
    result = await run_workflow_task(None, task(), emit)
    assert result["outcome"] == "unsupported"
    assert emit.records == [("flowbus.result.workflow", result)]


async def test_invalid_input_fails() -> None:
    result = await run_workflow_task(make_saga(), task(input={"amount": "x"}), Recorder())
    assert result["outcome"] == "failed"
    assert result["error"]["type"] == "ValidationError"


async def test_low_level_api() -> None:
    tries: list[int] = []

    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: Any) -> Any:
        if ctx.is_step_completed("token"):
            token = ctx.get_step_result("token")
        else:
            await ctx.record_step_start("token")
            token = "fresh"
            await ctx.record_step_complete("token", token)
        if not ctx.is_step_completed("store"):
            await ctx.record_step_start("store")
            for attempt in range(3):
                tries.append(attempt)
                if attempt == 2:
                    break
            else:
                await ctx.record_step_failure("store", ValueError("gave up"))
            await ctx.record_step_complete("store", {"stored": token})
        await ctx.record_step_start("log")
        await ctx.record_step_failure("log", "disk full")
        return ctx.get_step_result("store")

    emit = Recorder()
    first = await run_workflow_task(flow, task(), emit)
    assert first["output"] == {"stored": "fresh"}
    assert [(d["name"], d["status"], d["seq"]) for _, d in emit.records[:-1]] == [
        ("token", "started", 1),
        ("token", "completed", 1),
        ("store", "started", 2),
        ("store", "completed", 2),
        ("log", "started", 3),
        ("log", "failed", 3),
    ]
    assert emit.records[-2][1]["error"] == {"type": "Error", "message": "disk full"}

    tries.clear()
    again = Recorder()
    history = [completed(1, "token", "old"), completed(2, "store", {"stored": "old"})]
    second = await run_workflow_task(flow, task(history, reason="resumed"), again)
    assert second["output"] == {"stored": "old"}
    assert tries == []
    assert [(d["name"], d["seq"]) for _, d in again.records[:-1]] == [("log", 3), ("log", 3)]


async def test_workflow_time_is_the_same_on_every_replay() -> None:
    times: list[datetime] = []
    spans: list[timedelta] = []

    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: Any) -> None:
        times.append(ctx.workflow_time())
        spans.append(ctx.elapsed())
        await ctx.sleep("PT1M")

    await run_workflow_task(flow, task(), Recorder())
    await run_workflow_task(flow, task(now="2026-12-01T10:05:00.000Z"), Recorder())
    assert times == [datetime(2026, 12, 1, 10, 0, tzinfo=UTC)] * 2
    assert spans == [timedelta(seconds=2, milliseconds=4), timedelta(minutes=5)]


async def test_log_is_bound_and_silent_while_replaying(caplog: pytest.LogCaptureFixture) -> None:
    @workflow("payments")
    async def flow(ctx: WorkflowContext, input: Any) -> None:
        ctx.log.warning("before")
        await ctx.step("one", lambda: 1).run()
        ctx.log.warning("after")

    with caplog.at_level("INFO", logger="flowbus.sdk.workflow"):
        await run_workflow_task(flow, task([completed(1, "one", 1)]), Recorder())
    assert [r.getMessage() for r in caplog.records] == ["after"]
    assert caplog.records[0].instance_id == INSTANCE  # type: ignore[attr-defined]
    assert caplog.records[0].workflow_id == "payments"  # type: ignore[attr-defined]


def test_definition_document() -> None:
    trigger = {"topic": "orders", "type": "order.created"}

    @workflow("orders", version=3, timeout=3600, deprecated=True, triggers=[trigger])
    async def orders(ctx: WorkflowContext, order: Order) -> None:
        return None

    document = orders.definition()
    assert document == {
        "id": "orders",
        "version": 3,
        "kind": "code",
        "timeout": "PT3600S",
        "deprecated": True,
        "triggers": [trigger],
        "inputSchema": Order.model_json_schema(),
    }
    assert orders.input_model is Order


def test_workflow_must_be_async() -> None:
    with pytest.raises(TypeError):
        workflow("sync")(lambda ctx, input: None)  # type: ignore[arg-type,return-value]
