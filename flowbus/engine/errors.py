"""What the engine raises when its own invariants break."""

from __future__ import annotations


class EngineError(RuntimeError):
    """A broken invariant inside the engine (a bug, never bad user input)."""
