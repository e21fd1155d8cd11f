"""``harness run | plugins | tasks | leaderboard | export``. User mistakes: one line on
stderr, exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from harness import audit
from harness.api import KINDS, PROFILES, HarnessError
from harness.execute import Options, execute, open_store, report_damage
from harness.listing import inventory, lines
from harness.params import label
from harness.registry import SINGULAR, Registry, load_registry
from harness.report import design, export, leaderboard
from harness.selection import Request, instances
from harness.store import atomic_write_text

DEFAULT_STORE = ".harness"
DEFAULT_OUT = "leaderboard/README.md"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        self.exit(2, f"harness: error: {message} (see `{self.prog} --help`)\n")


def _common(prefix: str = "") -> Parser:
    # Accepted before and after the subcommand; separate dests so that the subcommand's
    # defaults do not overwrite what was given before it.
    common = Parser(add_help=False)
    common.add_argument("--plugin", dest=f"{prefix}plugin", action="append", default=[],
                        metavar="FILE.py", help="load a one-off plugin module (repeatable)")
    common.add_argument("--debug", dest=f"{prefix}debug", action="store_true",
                        help="show tracebacks")
    return common


def build_parser() -> Parser:
    common = _common()
    parser = Parser(prog="harness", description=__doc__, parents=[_common("top_")])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", parents=[common], help="run a grid and write the leaderboard")
    run.add_argument("--all", action="store_true",
                     help="every component of every kind not selected explicitly")
    for kind in KINDS:
        run.add_argument(f"--{SINGULAR[kind]}", dest=kind, action="append", default=[],
                         metavar="NAME[:k=v,...]", help=f"select a {SINGULAR[kind]} "
                         "(repeatable; k=v1,v2 sweeps a parameter)")
    run.add_argument("--train-task", dest="train_tasks", action="append", default=[],
                     metavar="NAME", help="train on these tasks only (default: the selected "
                     "tasks; with --all and no --task, those marked trains_by_default)")
    run.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    run.add_argument("--seed", type=seed_arg, default=0,
                     help="seed of the samples and first seed (0..2^32-1)")
    run.add_argument("--seeds", type=int, default=None,
                     help="training seeds per variant (default: the profile's; paper: 3)")
    run.add_argument("--store", default=DEFAULT_STORE, help="results store folder")
    run.add_argument("--out", default=DEFAULT_OUT, help="leaderboard file to write")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failed cell")
    run.add_argument("--executor", default="local", choices=("local", "ray"),
                     help="local: this process; ray: independent jobs as Ray tasks")
    run.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="join this Ray cluster (default: start a local Ray instance)")
    run.add_argument("--job-cpus", type=int, default=None,
                     help="CPUs (and torch threads) each Ray job gets (default: the threads "
                     "of a local run, so results are bit-identical to --executor local)")
    run.add_argument("--job-gpus", type=float, default=None,
                     help="GPUs each Ray job asks for (default: 1 if the cluster has GPUs)")

    plugins = sub.add_parser("plugins", parents=[common], help="list plugins and components")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")

    tasks = sub.add_parser("tasks", parents=[common],
                           help="list tasks; --audit: what else predicts their labels")
    tasks.add_argument("--audit", action="store_true",
                       help="nuisance AUCs per task and the dependence between tasks' labels")
    tasks.add_argument("--json", action="store_true", help="machine-readable output")
    tasks.add_argument("--task", dest="tasks", action="append", default=[], metavar="NAME[:k=v]",
                       help="these tasks only (repeatable; default: every task)")
    tasks.add_argument("--draws", type=int, default=audit.DRAWS,
                       help=f"draws of each task's sampler (default {audit.DRAWS:,})")
    tasks.add_argument("--seed", type=seed_arg, default=0, help="seed of the draws")

    board = sub.add_parser("leaderboard", parents=[common], help="render the leaderboard")
    board.add_argument("--store", default=DEFAULT_STORE)
    board.add_argument("--out", default=DEFAULT_OUT)
    board.add_argument("--profile", default=None, help="default: the latest run's profile")

    export = sub.add_parser("export", parents=[common],
                            help="every cell with its metadata, as CSV or JSON")
    export.add_argument("--format", default="csv", choices=("csv", "json"))
    export.add_argument("--store", default=DEFAULT_STORE)
    export.add_argument("--out", default=None, help="file to write (default: standard output)")
    return parser


# ------------------------------------------------------------------------------- commands


#: seeds are 32-bit: every random stream of the harness (torch, numpy, random) takes them
MAX_SEED = 2**32 - 1


def seed_arg(text: str) -> int:
    """``--seed``: an integer in [0, MAX_SEED]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is not in 0..{MAX_SEED}")
    return value


def cmd_plugins(args: argparse.Namespace, reg: Registry) -> int:
    data = inventory(reg)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print("\n".join(lines(data)))
    return 0


def cmd_tasks(args: argparse.Namespace, reg: Registry) -> int:
    if args.draws < 10:
        raise HarnessError(f"--draws must be >= 10, got {args.draws}")
    chosen = instances(reg, "tasks", args.tasks or sorted(reg.components["tasks"]))
    if not args.audit:
        data: list[dict[str, Any]] = [{"task": label(t), "classes": list(t.classes),
                 "compositional": bool(t.compositional),
                 "trains_by_default": bool(t.trains_by_default),
                 "exempt_nuisances": list(t.exempt_nuisances)} for t in chosen]
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            for d in data:
                flags = [f for f in ("compositional", "trains_by_default") if d[f]]
                print(f"{d['task']}: {' / '.join(d['classes'])}"
                      + (f" ({', '.join(flags)})" if flags else ""))
        return 0
    found = audit.run_audit(chosen, args.seed, args.draws)
    print(json.dumps(found.as_dict(), indent=2) if args.json else design.terminal(found))
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def request_of(args: argparse.Namespace) -> Request:
    return Request(encoders=args.encoders, adapters=args.adapters, merges=args.merges,
                   tasks=args.tasks, metrics=args.metrics, train_tasks=args.train_tasks,
                   all=args.all, profile=args.profile, seed=args.seed,
                   seeds=args.seeds)


def checked_paths(out: str | None, store: str) -> None:
    """Refuse an ``--out`` that would overwrite the results store (its database, the
    database's journal files, its artifacts: anything inside the store folder) or that is a
    folder, before anything is computed or written; and an empty ``--store``."""
    if not store.strip():
        raise HarnessError("--store is empty; give the results store's folder (default "
                           f"{DEFAULT_STORE})")
    if out is None:
        return
    target, folder = Path(out).resolve(), Path(store).resolve()
    if target == folder or folder in target.parents:
        raise HarnessError(f"--out {out} is inside the results store {store}; writing there "
                           "would destroy stored results: give a path outside it")
    if target.is_dir():
        raise HarnessError(f"--out {out} is a folder; give a file path (e.g. {out}/README.md)")


def cmd_run(args: argparse.Namespace, reg: Registry) -> int:
    checked_paths(args.out, args.store)
    options = Options(store=args.store, out=args.out, device=args.device,
                      executor=args.executor, ray_address=args.ray_address,
                      job_cpus=args.job_cpus, job_gpus=args.job_gpus, fail_fast=args.fail_fast,
                      plugins=[*args.top_plugin, *args.plugin], argv=sys.argv)
    outcome = execute(reg, request_of(args), options, _say, _progress)
    if args.executor == "ray":
        _say("ray: jobs per device: " + (", ".join(
            f"{d} {n}" for d, n in sorted(outcome.devices.items())) or "none needed"))
    for what, error, trace in outcome.summary.failures:
        _say(f"failed: {what}: {error}")
        if debugging(args):
            _say(trace)
    if outcome.stopped:
        _say(f"stopped at the first failure (--fail-fast): {outcome.stopped}")
    _say(f"leaderboard: {outcome.leaderboard}")
    print(outcome.summary.line())
    return 1 if outcome.summary.failed else 0


class _progress:
    """A rich progress bar with ETA on a terminal; silent otherwise."""

    def __init__(self, total: int):
        self.total = total

    def __enter__(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        self.bar = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                            console=console, disable=not console.is_terminal)
        self.bar.__enter__()
        task = self.bar.add_task("cells", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)


# ------------------------------------------------------------------------------ leaderboard


def cmd_leaderboard(args: argparse.Namespace, reg: Registry) -> int:
    checked_paths(args.out, args.store)
    store = open_store(args.store, reg, _say, existing=True)
    try:
        if args.profile is not None and store.latest_run(args.profile) is None:
            raise HarnessError(f"the store {args.store} has no run of profile "
                               f"{args.profile!r}; leave out --profile for its latest run's")
        out = leaderboard.write(store, Path(args.out), args.profile)
        report_damage(store, _say)
    finally:
        store.close()
    print(f"leaderboard: {out}")
    return 0


def cmd_export(args: argparse.Namespace, reg: Registry) -> int:
    checked_paths(args.out, args.store)
    store = open_store(args.store, reg, _say, existing=True)
    try:
        text = export.to_csv(store) if args.format == "csv" else export.to_json(store)
    finally:
        store.close()
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(Path(args.out), text)
        print(f"export: {args.out}", file=sys.stderr)
    return 0


COMMANDS = {"run": cmd_run, "plugins": cmd_plugins, "tasks": cmd_tasks,
            "leaderboard": cmd_leaderboard, "export": cmd_export}


def debugging(args: argparse.Namespace) -> bool:
    """``--debug`` (before or after the command) or HARNESS_DEBUG: tracebacks are shown."""
    return bool(args.debug or args.top_debug or os.environ.get("HARNESS_DEBUG"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = debugging(args)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reg = load_registry([*args.top_plugin, *args.plugin])
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        return COMMANDS[args.command](args, reg)
    except HarnessError as err:
        if debug:
            raise
        print(f"harness: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `harness plugins --json | head`: the reader left, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141


if __name__ == "__main__":
    sys.exit(main())
