"""The command line's arguments: ``harness run | plugins | tasks | leaderboard | export |
export-model | check``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from harness import audit
from harness.api import KINDS, PROFILES, HarnessError
from harness.plan import MAX_SEEDS
from harness.registry import SINGULAR

DESCRIPTION = ("harness run | plugins | tasks | leaderboard | export | export-model | check. "
               "User mistakes and "
               "faults of the machine (a full disk, a read-only file system): one line on "
               "stderr, exit code 2.")
DEFAULT_STORE = ".harness"
DEFAULT_OUT = "leaderboard/README.md"
#: where any other leaderboard goes by default: beside its store, ``.harness-leaderboard/...``
BESIDE = "-leaderboard/README.md"


def default_out(args: argparse.Namespace) -> str:
    """Where a leaderboard goes without ``--out``: the committed page (``DEFAULT_OUT``) only
    for the run it comes from, ``harness run --all`` alone on the quick profile; any other run
    (README's ``--profile smoke`` examples, a grid with a merge added) and ``harness
    leaderboard`` write beside their store, so that trying an example never replaces it."""
    committed = args.command == "run" and args.all and args.profile == "quick" and \
        args.seed == 0 and args.seeds is None and not args.train_tasks and \
        not any(getattr(args, kind) for kind in KINDS)
    if committed:
        return DEFAULT_OUT
    store = Path(args.store)
    if store.name in ("", ".", ".."):
        store = store.resolve()
    return str(store.parent / (store.name + BESIDE))


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
    parser = Parser(prog="harness", description=DESCRIPTION, parents=[_common("top_")])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", parents=[common], help="run a grid and write the leaderboard")
    selection(run)
    run.add_argument("--oracle", action=argparse.BooleanOptionalAction, default=None,
                     help="also score each tuned cross-task merge's candidates on the eval "
                     "samples: the ranking's oracle column, what honest tuning costs "
                     "(default: the profile's; quick leaves it out for its time budget)")
    run.add_argument("--store", default=DEFAULT_STORE, help="results store folder")
    run.add_argument("--out", default=None, help=f"leaderboard file to write (default: "
                     f"{DEFAULT_OUT} for `harness run --all` alone, the committed page's run; "
                     f"for any other run STORE{BESIDE}, beside the store)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failed cell")
    run.add_argument("--rank-by", default=None, metavar="METRIC", help=RANK_BY)
    run.add_argument("--timing", action="store_true", help="say where the wall time went "
                     "(seconds per stage) even when stderr is not a terminal")
    run.add_argument("--executor", default="local", choices=("local", "ray"),
                     help="local: this process; ray: independent jobs as Ray tasks")
    run.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="join this Ray cluster (default: start a local Ray instance)")
    run.add_argument("--job-cpus", type=int, default=None,
                     help="CPUs (and torch threads) each Ray job gets (default: the threads "
                     "of a local run, so results are bit-identical to --executor local)")
    run.add_argument("--job-gpus", type=float, default=None,
                     help="GPUs each Ray job asks for, a finite number >= 0 (default: 1 if "
                     "the cluster has GPUs)")

    plugins = sub.add_parser("plugins", parents=[common], help="list plugins and components")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.add_argument("--allow-broken", action="store_true",
                         help="exit 0 even when a plugin failed to load (default: exit 1)")

    tasks = sub.add_parser("tasks", parents=[common],
                           help="list tasks; --audit: what else predicts their labels")
    tasks.add_argument("--audit", action="store_true",
                       help="nuisance AUCs per task and the dependence between tasks' labels")
    tasks.add_argument("--json", action="store_true", help="machine-readable output")
    tasks.add_argument("--task", dest="tasks", action="append", default=[], metavar="NAME[:k=v]",
                       help="these tasks only (repeatable; default: every task)")
    tasks.add_argument("--draws", type=int, default=audit.DRAWS,
                       help=f"draws of each task's sampler, {audit.MIN_DRAWS}.."
                       f"{audit.MAX_DRAWS:,} (default {audit.DRAWS:,})")
    tasks.add_argument("--seed", type=seed_arg, default=0, help="seed of the draws")

    board = sub.add_parser("leaderboard", parents=[common], help="render the leaderboard")
    board.add_argument("--store", default=DEFAULT_STORE)
    board.add_argument("--out", default=None,
                       help=f"file to write (default: STORE{BESIDE}, beside the store)")
    board.add_argument("--profile", default=None, help="default: the latest run's profile")
    board.add_argument("--rank-by", default=None, metavar="METRIC", help=RANK_BY)

    export = sub.add_parser("export", parents=[common],
                            help="every cell with its metadata, as CSV or JSON; "
                            "or MTEB results files")
    export.add_argument("--format", default="csv", choices=("csv", "json", "mteb"),
                        help="mteb: MTEB results files in a folder (MTEB-shaped, not MTEB tasks)")
    export.add_argument("--store", default=DEFAULT_STORE)
    export.add_argument("--out", default=None, help="file to write (default: standard output); "
                        "with --format mteb, a new or empty folder")
    export.add_argument("target", nargs="?", default=None, metavar="OUT", help="as --out")
    export.add_argument("--profile", default=None, help="with --format mteb: the profile whose "
                        "scores to write (default: the latest run's)")

    model = sub.add_parser("export-model", parents=[common], help="one variant as a "
                           "sentence-transformers model folder, with its model card")
    model.add_argument("variant", metavar="VARIANT", help="the variant's key, as `harness "
                       "export` writes it (or its first 8 or more characters)")
    model.add_argument("--out", required=True, help="a new or empty folder to write")
    model.add_argument("--store", default=DEFAULT_STORE, help="results store folder")
    model.add_argument("--device", default="auto", help="where its weights are made (a "
                       "merge's held-out passes): auto, cpu, cuda, ...")
    selection(model, "the selection that planned the variant (default: each run the store "
              "recorded, then --all)")

    check = sub.add_parser("check", parents=[common],
                           help="run the contract checks on every component or the named ones")
    check.add_argument("names", nargs="*", metavar="NAME[:k=v,...]",
                       help="components to check (default: all, --plugin files included)")
    check.add_argument("--pretrained", action="store_true",
                       help="also load and check encoders with pretrained weights (slow)")
    return parser


def selection(parser: argparse.ArgumentParser, what: str = "") -> None:
    """The options that select a grid: ``harness run``'s, and ``harness export-model``'s
    (``what`` heads them in its help)."""
    group = parser.add_argument_group("selection", what or None)
    group.add_argument("--all", action="store_true",
                       help="every component of every kind not selected explicitly")
    for kind in KINDS:
        group.add_argument(f"--{SINGULAR[kind]}", dest=kind, action="append", default=[],
                           metavar="NAME[:k=v,...]", help=f"select a {SINGULAR[kind]} "
                           "(repeatable; k=v1,v2 sweeps a parameter)")
    group.add_argument("--train-task", dest="train_tasks", action="append", default=[],
                       metavar="NAME", help="train on these tasks only (default: the selected "
                       "tasks; with --all and no --task, those marked trains_by_default)")
    group.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    group.add_argument("--seed", type=seed_arg, default=0,
                       help="seed of the samples and first seed (0..2^32-1)")
    group.add_argument("--seeds", type=int, default=None,
                       help=f"training seeds per variant, 1..{MAX_SEEDS} (default: the "
                       "profile's; paper: 3)")


RANK_BY = ("the metric the merge-method ranking ranks by, as the run labels it (e.g. "
           "probe-accuracy; default: the primary metric, silhouette)")

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


def export_target(args: argparse.Namespace) -> str | None:
    """``harness export``'s output path (``--out`` or OUT); a folder for ``--format mteb``."""
    if args.target is not None and args.out is not None and args.target != args.out:
        raise HarnessError(f"give the output once: --out {args.out} or {args.target}")
    out = args.out if args.out is not None else args.target
    if args.format == "mteb" and out is None:
        raise HarnessError("--format mteb writes a folder: harness export --format mteb DIR")
    if args.format != "mteb" and args.profile is not None:
        raise HarnessError(f"--profile is for --format mteb; --format {args.format} exports "
                           "every profile")
    return out
