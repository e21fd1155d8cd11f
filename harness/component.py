"""The base of every plugin component (re-exported by ``harness.api``), and how plugin code
that runs while a command is set up (selecting, planning) is called."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

from harness.errors import HarnessError


class Component:
    """Base of every plugin component. Subclasses are ``@dataclass(frozen=True)``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    #: in the default grid (``harness run --all`` and kinds not named); off for components that
    #: need a parameter to run or that the default grid leaves out to keep its time budget
    in_all: ClassVar[bool] = True
    #: parameter sets the default grid runs (beside the defaults where ``in_all``), each as on
    #: the command line after ``name:`` (``"between=checkpoints"``). Empty: none
    also_in_all: ClassVar[tuple[str, ...]] = ()
    #: parameters added after results of this component were stored: left out of its content
    #: keys while they hold their default, so those results stay valid (collected over the
    #: class's bases: a subclass lists only its own)
    added_params: ClassVar[tuple[str, ...]] = ()
    #: parameter sets ``harness check`` (and the contract tests) check this component with,
    #: beside its defaults, each as on the command line after ``name:`` (``"t=0.25"``,
    #: ``"model=/path,pooling=last"``): for parameters that need a value, or settings that take
    #: another code path. Empty: the defaults only
    examples: ClassVar[tuple[str, ...]] = ()


class PluginFault(HarnessError):
    """Plugin code raised (or exited) where the harness called it before any work: a usage
    error, but a fault of the plugin, not of a parameter (``harness check`` fails it)."""


def raised(err: BaseException) -> str:
    """``Type: message`` of an exception, on one line (``Type`` alone when it says nothing)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@contextlib.contextmanager
def plugin_call(what: str) -> Iterator[None]:
    """Plugin code run before any work (a component's ``__post_init__``, an adapter's
    ``supports``, an encoder's ``settled``): an exception, or a ``sys.exit()``, raised in it
    becomes one line naming ``what`` (a ``PluginFault``: a usage error). A ``HarnessError``
    the plugin raised itself passes unchanged."""
    try:
        yield
    except HarnessError:
        raise
    except (Exception, SystemExit) as err:
        raise PluginFault(f"{what} raised {raised(err)}; fix the plugin") from None
