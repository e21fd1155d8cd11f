"""``harness check``: the contract checks (``harness.contracts``) over the registry's
components, one result per component. The test suite and ``harness.testing`` run the same code.

Every component of every kind is checked, ``in_all = False`` ones and ``--plugin`` modules
included, or only those named. A component is checked with its default parameters and with each
parameter set it declares in ``examples``, ``also_in_all`` or ``also_compared``; one whose
defaults do not build and that declares no examples is skipped, saying so. Encoders that load
pretrained weights (``from_scratch = False``) load only with ``pretrained``; every encoder that
builds still answers adapters' ``supports``.
"""

from __future__ import annotations

import difflib
import random
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from harness import contracts, merge_contracts
from harness.api import KINDS, Encoder, HarnessError, Sequence, Task
from harness.component import PluginFault
from harness.params import expand, parse_spec
from harness.registry import SINGULAR, Registry
from harness.samples import draw

Status = Literal["ok", "FAIL", "skip"]
#: sequences of each other task a task's label is checked on
OTHERS_PER_TASK = 24


@dataclass(frozen=True)
class Target:
    """One component to check: its kind, name, class and where it comes from, and the
    parameter specs given for it (empty: its defaults and declared examples)."""

    kind: str
    name: str
    cls: type[Any]
    where: str
    specs: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{SINGULAR[self.kind]}-{self.name}" + "".join(f"[{s}]" for s in self.specs)


@dataclass(frozen=True)
class Result:
    target: Target
    status: Status
    detail: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        t = self.target
        head = f"{self.status:<5} {SINGULAR[t.kind]} {t.name} ({t.where})"
        return head + (f": {self.detail}" if self.detail else "")


def where(registry: Registry, kind: str, name: str) -> str:
    """The plugin a component comes from: its entry point, or ``file PATH``."""
    plugin = registry.owner[(kind, name)]
    dist = registry.plugins[plugin].distribution
    return dist if dist.startswith("file ") else plugin


def _message(kind: str, name: str, err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, contracts.ContractError | HarnessError) or \
            text.startswith(f"{SINGULAR[kind]} {name!r}"):  # the harness's own rules name it
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass
class Checker:
    """Runs the contract checks against one registry's components."""

    registry: Registry
    pretrained: bool = False
    device: str = "cpu"
    _built: dict[tuple[str, str], list[tuple[str, Any]] | str] = field(default_factory=dict)

    def targets(self, names: tuple[str, ...] | list[str] = ()) -> list[Target]:
        """Every component, or those named (``NAME`` or ``NAME:k=v,...``; a name held by two
        kinds, such as ``none``, checks both); an unknown name is a ``HarnessError``."""
        reg = self.registry
        if not names:
            return [Target(kind, name, cls, where(reg, kind, name))
                    for kind in KINDS for name, cls in sorted(reg.components[kind].items())]
        out = []
        for text in names:
            name, raw = parse_spec(text)
            found = [Target(kind, name, reg.components[kind][name], where(reg, kind, name),
                            (text.partition(":")[2],) if raw else ())
                     for kind in KINDS if name in reg.components[kind]]
            if not found:
                every = sorted({n for kind in KINDS for n in reg.components[kind]})
                close = difflib.get_close_matches(name, every, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise HarnessError(f"no component named {name!r}{hint} (`harness plugins` "
                                   "lists them; load a file with --plugin FILE.py)")
            out += found
        return out

    def instances(self, kind: str, cls: type[Any], specs: tuple[str, ...] = ()
                  ) -> list[tuple[str, Any]] | str:
        """(spec, instance) for the given specs, or the defaults and each of ``examples`` and
        ``also_in_all`` and ``also_compared`` (what the default grid runs);
        a string when the defaults do not build and nothing else is declared. A spec that
        does not build raises ``ContractError``."""
        key = (kind, cls.name)
        if not specs and key in self._built:
            return self._built[key]
        out: list[tuple[str, Any]] = []
        declared = tuple(getattr(cls, "examples", ()) or ())
        declared += tuple(s for s in getattr(cls, "also_in_all", ()) or () if s not in declared)
        declared += tuple(f"over=tasks,{s}" for s in getattr(cls, "also_compared", ()) or ()
                          if f"over=tasks,{s}" not in declared)
        if not specs:
            try:
                out.append(("", expand(cls, SINGULAR[kind], {})[0]))
            except PluginFault:  # not a parameter that needs a value: a fault, its line fails
                raise
            except HarnessError as err:
                if not declared:
                    return self._built.setdefault(key, (
                        f"its defaults do not build ({_message(kind, cls.name, err)}) and it "
                        "declares no examples to check it with"))
        for spec in specs or declared:
            try:
                _, raw = parse_spec(f"{cls.name}:{spec}")
                out += [(spec, obj) for obj in expand(cls, SINGULAR[kind], raw)]
            except HarnessError as err:
                raise contracts.ContractError(f"parameters {spec!r}: {err}") from None
        if not specs:
            self._built[key] = out
        return out

    def _all(self, kind: str) -> list[Any]:
        found = []
        for cls in self.registry.components[kind].values():
            try:
                made = self.instances(kind, cls)
            except (contracts.ContractError, PluginFault):
                continue  # that component's own line fails
            if not isinstance(made, str):
                found += [obj for _, obj in made]
        return found

    @cached_property
    def encoders(self) -> list[Encoder]:
        return self._all("encoders")

    @cached_property
    def others(self) -> list[tuple[Sequence, str]]:
        """A few sequences of every task whose sampler works, with the task's name."""
        out = []
        for task in self._all("tasks"):
            try:
                seqs = draw(task, OTHERS_PER_TASK, random.Random(0))
            except Exception:  # that task's own line says why
                continue
            out += [(s, task.name) for s in seqs]
        return out

    def _check(self, kind: str, spec: str, obj: Any) -> str | None:
        """Run one instance's contract; a reason to skip, or None when it passed."""
        if kind == "tasks":
            task: Task = obj
            contracts.check_task(task, [p for p in self.others if p[1] != task.name])
        elif kind == "merges":
            merge_contracts.check_merge(obj, at_defaults=spec == "")
        elif kind == "metrics":
            contracts.check_metric(obj)
        elif kind == "encoders":
            if not (type(obj).from_scratch or self.pretrained):
                return "loads pretrained weights; check it with --pretrained"
            contracts.check_encoder(obj, self.device)
        elif kind == "adapters":
            contracts.check_adapter(obj, self.encoders)
        return None

    def run(self, target: Target) -> Result:
        """Check one component (every parameter set of it); a failure names the set."""
        start = time.perf_counter()
        kind, name = target.kind, target.name
        spec = ""
        try:
            made = self.instances(kind, target.cls, target.specs)
            if isinstance(made, str):
                return Result(target, "skip", made, time.perf_counter() - start)
            skipped = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a metric's library warnings: not a failure
                for spec, obj in made:
                    skipped = self._check(kind, spec, obj)
                    if skipped:
                        break
        except (Exception, SystemExit) as err:  # a plugin's sys.exit() fails only its line
            text = _message(kind, name, err)
            at = f"with {spec}: " if spec else ""
            return Result(target, "FAIL", at + text, time.perf_counter() - start)
        if skipped:
            return Result(target, "skip", skipped, time.perf_counter() - start)
        sets = f"{len(made)} parameter sets" if len(made) > 1 else ""
        return Result(target, "ok", sets, time.perf_counter() - start)


def check_components(registry: Registry, names: tuple[str, ...] | list[str] = (),
                     pretrained: bool = False, device: str = "cpu") -> list[Result]:
    """The result of every component's checks (or the named ones'), in kind order."""
    checker = Checker(registry, pretrained, device)
    return [checker.run(target) for target in checker.targets(names)]


def summary(results: list[Result], seconds: float) -> str:
    count = {s: sum(r.status == s for r in results) for s in ("ok", "FAIL", "skip")}
    noun = "component" if len(results) == 1 else "components"
    return (f"checked {len(results)} {noun} in {seconds:.1f} s: {count['ok']} ok, "
            f"{count['FAIL']} failed, {count['skip']} skipped")


def command(args: Any, registry: Registry) -> int:
    """``harness check [NAME ...] [--pretrained]``: one line per component, then a summary;
    exit 1 when any failed."""
    start = time.perf_counter()
    checker = Checker(registry, args.pretrained)
    results = []
    for target in checker.targets(args.names):
        results.append(checker.run(target))
        print(results[-1].line(), flush=True)
    print(summary(results, time.perf_counter() - start))
    return 1 if any(r.status == "FAIL" for r in results) else 0
