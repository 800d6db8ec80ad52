"""flowbus: a Kafka-native workflow engine.

The SDK's entry points are reachable from here (`flowbus.Worker`, `flowbus.workflow`,
`flowbus.task`, `flowbus.WorkflowContext`, `flowbus.TaskContext`), loaded on first use so
that importing `flowbus` alone stays cheap.
"""

from typing import Any

__version__ = "0.1.0"

_SDK_NAMES = frozenset({"Worker", "workflow", "task", "WorkflowContext", "TaskContext"})


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from flowbus import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'flowbus' has no attribute {name!r}")
