"""``harness run | plugins | tasks | leaderboard | export | export-model | check``. User
mistakes and faults of the machine (a full disk, a read-only file system): one line on stderr,
exit code 2."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sqlite3
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from harness import audit, check
from harness.api import KINDS, HarnessError
from harness.arguments import build_parser, default_out, export_target
from harness.execute import Options, execute, open_store, report_damage
from harness.listing import broken, inventory, lines
from harness.outpaths import checked_folder, checked_paths, write_folder
from harness.params import label
from harness.registry import Registry, load_registry
from harness.report import design, export, leaderboard, mteb
from harness.selection import Request, instances
from harness.store import atomic_write_text
from harness.store.faults import machine_fault


def show(text: str, what: str, fix: str = "redirect it to a file") -> None:
    """``text`` on standard output, or one line saying it cannot be written there (closed,
    full); a reader that left (``| head``) is not an error."""
    try:
        if sys.stdout is None:
            raise OSError(9, "standard output is closed")
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        raise HarnessError(f"cannot write {what} to standard output ({err.strerror}); "
                           f"{fix}") from None


def cmd_plugins(args: argparse.Namespace, reg: Registry) -> int:
    data = inventory(reg)
    show((json.dumps(data, indent=2, default=str) if args.json else "\n".join(lines(data)))
         + "\n", "the plugin listing")
    if reg.broken and not args.allow_broken:
        print(f"harness: {len(reg.broken)} plugin(s) failed to load: {broken(reg)}; "
              "--allow-broken lists them with exit code 0", file=sys.stderr)
        return 1
    return 0


def cmd_tasks(args: argparse.Namespace, reg: Registry) -> int:
    if not audit.MIN_DRAWS <= args.draws <= audit.MAX_DRAWS:
        raise HarnessError(f"--draws must be in {audit.MIN_DRAWS}..{audit.MAX_DRAWS}, got "
                           f"{args.draws}")
    chosen = instances(reg, "tasks", args.tasks or sorted(reg.components["tasks"]))
    if not args.audit:
        data: list[dict[str, Any]] = [{"task": label(t), "classes": list(t.classes),
                 "compositional": bool(t.compositional),
                 "trains_by_default": bool(t.trains_by_default),
                 "exempt_nuisances": list(t.exempt_nuisances)} for t in chosen]
        out = [json.dumps(data, indent=2)] if args.json else [
            f"{d['task']}: {' / '.join(d['classes'])}" + (f" ({', '.join(flags)})" if flags
                                                          else "")
            for d in data for flags in [[f for f in ("compositional", "trains_by_default")
                                         if d[f]]]]
        show("\n".join(out) + "\n", "the task list")
        return 0
    found = audit.run_audit(chosen, args.seed, args.draws)
    show((json.dumps(found.as_dict(), indent=2) if args.json else design.terminal(found))
         + "\n", "the task audit")
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def request_of(args: argparse.Namespace) -> Request:
    return Request(encoders=args.encoders, adapters=args.adapters, merges=args.merges,
                   tasks=args.tasks, metrics=args.metrics, train_tasks=args.train_tasks,
                   all=args.all, profile=args.profile, seed=args.seed,
                   seeds=args.seeds, oracle=args.oracle)


def cmd_run(args: argparse.Namespace, reg: Registry) -> int:
    args.out = args.out or default_out(args)
    checked_paths(args.out, args.store)
    options = Options(store=args.store, out=args.out, device=args.device,
                      executor=args.executor, ray_address=args.ray_address,
                      job_cpus=args.job_cpus, job_gpus=args.job_gpus, fail_fast=args.fail_fast,
                      plugins=[*args.top_plugin, *args.plugin], argv=sys.argv,
                      rank_by=args.rank_by)
    outcome = execute(reg, request_of(args), options, _say, _progress)
    if args.executor == "ray":
        _say("ray: jobs per device: " + (", ".join(
            f"{d} {n}" for d, n in sorted(outcome.devices.items())) or "none needed"))
    for note in outcome.summary.notes:
        _say(f"ray: {note}")
    for what, error, trace in outcome.summary.failures:
        _say(f"failed: {what}: {error}")
        if debugging(args):
            _say(trace)
    if outcome.stopped:
        _say(f"stopped at the first failure (--fail-fast): {outcome.stopped}")
    _say(f"leaderboard: {outcome.leaderboard}")
    if outcome.timing and (args.timing or sys.stderr.isatty()):
        _say(outcome.timing)
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
    args.out = args.out or default_out(args)
    checked_paths(args.out, args.store)
    store = open_store(args.store, reg, _say, existing=True)
    try:
        if args.profile is not None and store.latest_run(args.profile) is None:
            raise HarnessError(f"the store {args.store} has no run of profile "
                               f"{args.profile!r}; leave out --profile for its latest run's")
        out = leaderboard.write(store, Path(args.out), args.profile, rank_by=args.rank_by)
        report_damage(store, _say)
    finally:
        store.close()
    print(f"leaderboard: {out}")
    return 0


def cmd_export(args: argparse.Namespace, reg: Registry) -> int:
    out = export_target(args)
    if args.format == "mteb" and out is not None:
        checked_folder(Path(out), Path(args.store))
    else:
        checked_paths(out, args.store)
    store = open_store(args.store, reg, _say, existing=True)
    try:
        if args.format == "mteb" and out is not None:
            found, profile, seed = mteb.files(store, args.profile)
            write_folder(Path(out), lambda folder: mteb.write(folder, found))
            print("export: {} MTEB results files of {} variants".format(*mteb.counts(found))
                  + f" (profile {profile}, eval seed {seed}) in {out}; MTEB-shaped, not MTEB "
                  "tasks", file=sys.stderr)
            return 0
        text = export.to_csv(store) if args.format == "csv" else export.to_json(store)
    finally:
        store.close()
    if out is None:
        show(text, "the export", "pass --out FILE")
    else:
        atomic_write_text(Path(out), text)
        print(f"export: {out}", file=sys.stderr)
    return 0


def run_request(argv: list[str]) -> Request | None:
    """The selection of a recorded ``harness run`` command line, or None (another command, or
    one this harness cannot parse), quietly."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(argv)
    except SystemExit:
        return None
    return request_of(args) if args.command == "run" else None


def cmd_export_model(args: argparse.Namespace, reg: Registry) -> int:
    from harness.model_export import export_model, request_or_none
    from harness.run import pick_device

    checked_paths(None, args.store)  # --out is a folder: export_model checks it
    store = open_store(args.store, reg, _say, existing=True)
    try:
        export_model(reg, store, args.variant, Path(args.out), request_or_none(args, KINDS),
                     run_request, pick_device(args.device), _say)
    finally:
        store.close()
    return 0


COMMANDS = {"run": cmd_run, "plugins": cmd_plugins, "tasks": cmd_tasks,
            "leaderboard": cmd_leaderboard, "export": cmd_export,
            "export-model": cmd_export_model, "check": check.command}


def debugging(args: argparse.Namespace) -> bool:
    """``--debug`` (before or after the command) or HARNESS_DEBUG set to anything but empty,
    0, false, no or off (in any case): tracebacks are shown."""
    value = os.environ.get("HARNESS_DEBUG", "").strip().lower()
    return bool(args.debug or args.top_debug or value not in ("", "0", "false", "no", "off"))


def _streams() -> None:
    """Standard streams that cannot fail the command: a closed one is reopened on /dev/null
    (so that no file the harness opens lands on its descriptor), and characters the terminal's
    encoding lacks (``PYTHONIOENCODING=ascii``) are shown as escapes, not raised."""
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_WRONLY)  # takes the lowest free descriptor: ``fd``
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _streams()
    args = build_parser().parse_args(argv)
    debug = debugging(args)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reg = load_registry([*args.top_plugin, *args.plugin])
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        code = COMMANDS[args.command](args, reg)
        if reg.broken and args.command != "plugins":  # after the command: its errors name them
            print(f"warning: plugin(s) failed to load and took no part: {broken(reg)}",
                  file=sys.stderr)
        return code
    except HarnessError as err:
        if debug:
            raise
        print(f"harness: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except SystemExit as exit_:  # past parsing only plugin code exits: never silently, never 0
        if debug:
            traceback.print_exc()
        print(f"harness: error: {_exited(exit_)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `harness plugins --json | head`: the reader left, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141
    except (OSError, sqlite3.Error) as err:
        store = getattr(args, "store", None)
        message = machine_fault(err, Path(store) if store else None)
        if message is None or debug:
            raise
        print(f"harness: error: {message}", file=sys.stderr)
        return 2


def _exited(err: SystemExit) -> str:
    """Where a ``sys.exit()`` that nothing caught was called, and what to do about it."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno} (in {frames[-1].name})" \
        if frames else ""
    return (f"sys.exit({err.code!r}) was called{where}; plugin code must raise an exception, "
            "not exit: fix the plugin")


if __name__ == "__main__":
    sys.exit(main())
