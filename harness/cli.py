"""``harness run | plugins | leaderboard``. User mistakes: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from harness.api import KINDS, PROFILES, HarnessError
from harness.params import describe, expand, parse_spec
from harness.registry import SINGULAR, Registry, load_registry

DEFAULT_STORE = ".harness"
DEFAULT_OUT = "leaderboard/README.md"
PACKAGES = ("numgeo-harness", "torch", "numpy", "scikit-learn", "safetensors", "pluggy",
            "transformers", "peft", "sentence-transformers", "matplotlib")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        self.exit(2, f"harness: error: {message} (see `{self.prog} --help`)\n")


def _common(prefix: str = "") -> argparse.ArgumentParser:
    # Accepted before and after the subcommand; separate dests so that the subcommand's
    # defaults do not overwrite what was given before it.
    common = argparse.ArgumentParser(add_help=False)
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
    run.add_argument("--seed", type=int, default=0, help="seed of the samples and first seed")
    run.add_argument("--seeds", type=int, default=1, help="training seeds per variant")
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


# ---------------------------------------------------------------------------------- plugins


def inventory(reg: Registry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in KINDS:
        entries = []
        for name, cls in sorted(reg.components[kind].items()):
            plugin = reg.owner[(kind, name)]
            entry: dict[str, Any] = {
                "name": name, "plugin": plugin, "distribution": reg.plugins[plugin].distribution,
                "version": str(cls.version), "params": describe(cls),
                "doc": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
                "in_all": bool(cls.in_all)}
            if kind == "encoders":
                entry["family"] = cls.family or "inferred"
            if kind == "tasks":
                entry["classes"] = list(cls.classes)
            if kind == "metrics":
                entry["higher_is_better"] = cls.higher_is_better
            entries.append(entry)
        out[kind] = entries
    out["plugins"] = [{"name": p.name, "distribution": p.distribution, "version": p.version,
                       "hooks": p.hooks, "error": p.error}
                      for p in sorted(reg.plugins.values(), key=lambda p: p.name)]
    return out


def cmd_plugins(args: argparse.Namespace, reg: Registry) -> int:
    data = inventory(reg)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    for p in data["plugins"]:
        status = f"FAILED TO LOAD: {p['error']}" if p["error"] else ", ".join(p["hooks"])
        print(f"{p['name']} ({p['distribution']} {p['version']}): {status}")
    for kind in KINDS:
        print(f"\n{kind}:")
        for e in data[kind]:
            params = ", ".join(f"{d['name']}={d['default']}" for d in e["params"])
            extra = f" [{e['family']}]" if "family" in e else ""
            print(f"  {e['name']}{extra} ({e['plugin']}) {e['doc']}"
                  + (f"\n      params: {params}" if params else ""))
    return 0


# -------------------------------------------------------------------------------------- run


def instances(reg: Registry, kind: str, specs: list[str]) -> list[Any]:
    """The components ``name[:k=v,...]`` specs stand for, sweeps expanded, duplicates dropped."""
    items: list[Any] = []
    for text in specs:
        name, raw = parse_spec(text)
        for item in expand(reg.get(kind, name), SINGULAR[kind], raw):
            if item not in items:
                items.append(item)
    return items


def select(reg: Registry, args: argparse.Namespace) -> Any:
    from harness.plan import Selection

    given = {kind: getattr(args, kind) for kind in KINDS}
    if not args.all and not any(given.values()):
        raise HarnessError("nothing selected; pass --all, or --encoder/--adapter/--merge/"
                           "--task/--metric NAME")
    chosen: dict[str, list[Any]] = {}
    for kind in KINDS:
        if given[kind]:
            chosen[kind] = instances(reg, kind, given[kind])
        else:
            chosen[kind] = [cls() for _, cls in sorted(reg.components[kind].items())
                            if cls.in_all]
    if args.all and reg.broken:
        names = ", ".join(f"{p.name} ({p.distribution}): {p.error}" for p in reg.broken)
        raise HarnessError(f"--all needs every plugin but some failed to load: {names}; fix "
                           "or disable them with HARNESS_DISABLE_PLUGINS=NAME")
    if args.train_tasks:
        train = instances(reg, "tasks", args.train_tasks)
    elif args.all and not given["tasks"]:
        train = [t for t in chosen["tasks"] if t.trains_by_default]
    else:
        train = None
    return Selection(**chosen, train_tasks=train)


def provenance() -> tuple[str, dict[str, str]]:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or "unknown", packages


def embeddings_loader(reg: Registry, store_dir: str) -> Any:
    """(profile, eval seed) -> (variant key, task) -> the stored embeddings of that task's eval
    sample and its labels, for the leaderboard's figures."""
    from harness.plan import eval_key, eval_sample
    from harness.run import embedding_key
    from harness.store import Store

    def factory(profile_name: str, seed: int) -> Any:
        import numpy as np

        profile = PROFILES[profile_name]
        store = Store(store_dir)  # only its artifact folder is read

        def load(variant: str, task_name: str) -> Any:
            if task_name not in reg.components["tasks"]:
                return None
            task = reg.components["tasks"][task_name]()
            seqs = eval_sample(task, profile, seed)
            X = store.load_embeddings(embedding_key(variant, eval_key(task, profile, seed)),
                                      len(seqs))
            if X is None or not np.isfinite(X).all():  # never drawn from
                return None
            return X, np.array([task.label(s) for s in seqs])
        return load
    return factory


def compositional(reg: Registry) -> set[str]:
    """The names of the registered tasks marked compositional (claim 1 is judged on them)."""
    return {name for name, cls in reg.components["tasks"].items() if cls.compositional}


def _check_writable_out(out: Path) -> None:
    """Refuse before a run, not after it, a leaderboard path that cannot be written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HarnessError(f"cannot write the leaderboard to {out}: {err.strerror} "
                           f"({out.parent}); pass --out PATH") from None
    if out.is_dir() or not os.access(out.parent, os.W_OK):
        raise HarnessError(f"cannot write the leaderboard to {out}: not a writable file path; "
                           "pass --out PATH")


def _report_dropped(store: Any) -> None:  # a harness.store.Store
    if store.dropped:
        print(f"warning: the store held {store.dropped} damaged rows; they were dropped and "
              "`harness run` recomputes what they stood for", file=sys.stderr)


def cmd_run(args: argparse.Namespace, reg: Registry) -> int:
    from harness import leaderboard
    from harness.analysis import analyse
    from harness.plan import build_plan
    from harness.run import FailFast, Runner, pick_device
    from harness.store import Store

    if args.seeds < 1:
        raise HarnessError(f"--seeds must be >= 1, got {args.seeds}")
    if args.executor != "ray" and args.ray_address:
        raise HarnessError("--ray-address needs --executor ray")
    if (args.job_cpus is not None and args.job_cpus < 1) or \
            (args.job_gpus is not None and args.job_gpus < 0):
        raise HarnessError("--job-cpus must be >= 1 and --job-gpus >= 0")
    profile = PROFILES[args.profile]
    plan = build_plan(reg, select(reg, args), profile, args.seed, args.seeds)
    store = Store(args.store)  # validated before anything is printed: errors stay one line
    device = pick_device(args.device) if args.executor == "local" else args.device
    ray_resources: dict[str, Any] = {}
    if args.executor == "ray":  # each job picks its device on its worker
        from harness.ray_executor import resources

        ray_resources = resources(args)
    _check_writable_out(Path(args.out))
    store.sweep_temporary()
    _report_dropped(store)
    for what, why in plan.skipped:
        print(f"skipped: {what}: {why}", file=sys.stderr)
    commit, packages = provenance()
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run_id = store.start_run(sys.argv, profile.name, list(range(args.seed,
                                                                args.seed + args.seeds)),
                             commit, packages, now)
    stopped = None
    with _progress(len(plan.cells)) as advance:
        runner = Runner(plan, store, run_id, device, args.fail_fast, advance)
        try:
            if args.executor == "ray":
                from harness.ray_executor import job_spec, run_on_ray

                devices = run_on_ray(runner, job_spec(args, [*args.top_plugin, *args.plugin],
                                                      run_id, ray_resources))
                print("ray: jobs per device: " + (", ".join(
                    f"{d} {n}" for d, n in sorted(devices.items())) or "none needed"),
                    file=sys.stderr)
            else:
                runner.run()
        except FailFast as err:
            stopped = str(err)
        summary = runner.summary
    if stopped is None:
        analyse(plan, store, run_id)  # CKA to the base, what else is encoded: from the store
    store.finish_run(run_id, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    out = leaderboard.write(store, Path(args.out), profile.name, args.seed,
                            {v.key for v in plan.variants}, compositional(reg),
                            embeddings_loader(reg, args.store))
    store.close()
    for what, error, trace in summary.failures:
        print(f"failed: {what}: {error}", file=sys.stderr)
        if debugging(args):
            print(trace, file=sys.stderr)
    if stopped:
        print(f"stopped at the first failure (--fail-fast): {stopped}", file=sys.stderr)
    print(f"leaderboard: {out}", file=sys.stderr)
    print(summary.line())
    return 1 if summary.failed else 0


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
    from harness import leaderboard
    from harness.store import Store

    store = Store.open_existing(args.store)
    _report_dropped(store)
    out = leaderboard.write(store, Path(args.out), args.profile,
                            compositional=compositional(reg),
                            loader=embeddings_loader(reg, args.store))
    store.close()
    print(f"leaderboard: {out}")
    return 0


def cmd_export(args: argparse.Namespace, reg: Registry) -> int:
    from harness import export
    from harness.store import Store, atomic_write_text

    store = Store.open_existing(args.store)
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


COMMANDS = {"run": cmd_run, "plugins": cmd_plugins, "leaderboard": cmd_leaderboard,
            "export": cmd_export}


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
