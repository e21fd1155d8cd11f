"""The base of every plugin component (re-exported by ``harness.api``)."""

from __future__ import annotations

from typing import ClassVar


class Component:
    """Base of every plugin component. Subclasses are ``@dataclass(frozen=True)``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    #: in the default grid (``harness run --all`` and kinds not named); off for components that
    #: need a parameter to run or that the default grid leaves out to keep its time budget
    in_all: ClassVar[bool] = True
    #: parameters added after results of this component were stored: left out of its content
    #: keys while they hold their default, so those results stay valid (collected over the
    #: class's bases: a subclass lists only its own)
    added_params: ClassVar[tuple[str, ...]] = ()
    #: parameter sets ``harness check`` (and the contract tests) check this component with,
    #: beside its defaults, each as on the command line after ``name:`` (``"t=0.25"``,
    #: ``"model=/path,pooling=last"``): for parameters that need a value, or settings that take
    #: another code path. Empty: the defaults only
    examples: ClassVar[tuple[str, ...]] = ()
