"""The hooks a plugin implements. Each receives a ``register`` callback: call it with a component
class (a frozen dataclass subclassing the matching ``harness.api`` base) once per component."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")

Register = Callable[[type[Any]], None]


@hookspec
def register_encoders(register: Register) -> None:
    """Register encoder classes (subclasses of ``harness.api.Encoder``)."""


@hookspec
def register_adapters(register: Register) -> None:
    """Register adapter classes (subclasses of ``harness.api.Adapter``)."""


@hookspec
def register_merges(register: Register) -> None:
    """Register merge classes (subclasses of ``harness.api.Merge``)."""


@hookspec
def register_tasks(register: Register) -> None:
    """Register task classes (subclasses of ``harness.api.Task``)."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metric classes (subclasses of ``harness.api.Metric``)."""
