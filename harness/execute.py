"""``harness run`` as a function: plan the request, record the run, compute what is missing
(in this process or on Ray), analyse, render the leaderboard. The CLI only parses and prints."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import audit, keys, ray_executor
from harness.analysis import analyse
from harness.api import HarnessError
from harness.backfill import backfill
from harness.claim_sample import analyse_claims, check_claim_samples
from harness.learnability import analyse_fits
from harness.params import label
from harness.plan import Plan, plan_request
from harness.provenance import provenance
from harness.registry import Registry
from harness.report import leaderboard
from harness.run import FailFast, Runner, Summary, pick_device
from harness.samples import eval_sample_record
from harness.selection import Request
from harness.settle import settle_device
from harness.store import Store
from harness.store.artifacts import Artifacts
from harness.store.database import NoRunYet
from harness.threads import one_blas_thread
from harness.timing import CLOCK, stage

#: a progress display: entered with the number of cells, yields ``advance(n)``
Progress = Callable[[int], contextlib.AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class Options:
    """How to run a request (none of this changes a result)."""

    store: str
    out: str
    device: str = "auto"
    executor: str = "local"  # local | ray
    ray_address: str | None = None
    job_cpus: int | None = None
    job_gpus: float | None = None
    fail_fast: bool = False
    plugins: list[str] = field(default_factory=list)  # --plugin files (for Ray workers)
    rank_by: str | None = None  # the merge-method ranking's metric (default: the primary)
    argv: list[str] = field(default_factory=list)  # recorded with the run


@dataclass
class Outcome:
    summary: Summary
    leaderboard: Path
    stopped: str | None = None  # the --fail-fast failure that stopped the run
    devices: dict[str, int] = field(default_factory=dict)  # Ray: jobs per device
    timing: str = ""  # seconds per stage (harness.timing), for `harness run` to print


@contextlib.contextmanager
def _silent(total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


def check_writable_out(out: Path) -> None:
    """``--out`` is replaced by a rename: refuse a path that is not a regular file (a device
    such as /dev/full, a pipe, a symbolic link would be replaced, not written through) and one
    whose folder cannot be made or written, before anything is read or computed."""
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise HarnessError(f"--out {out}: {err.strerror}; give a writable file path") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise HarnessError(f"--out {out} exists and is not a regular file (a device, a pipe or "
                           "a link would be replaced); give a file path")
    folder = out.absolute().parent
    try:
        while not folder.exists():
            folder = folder.parent
        usable = folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        usable = False
    if not usable:
        raise HarnessError(f"cannot write --out {out}: {folder} is not a writable folder; "
                           "give another path")


def open_store(path: str, registry: Registry, say: Callable[[str], None],
               existing: bool = False) -> Store:
    """The store at ``path`` (upgraded and backfilled if an earlier harness wrote it), with a
    warning for damaged rows it dropped."""
    store = Store.open_existing(path) if existing else Store(path)
    try:
        if existing and store.latest_run() is None:  # never an empty export or page
            raise NoRunYet(path)
        _upkeep(store, registry, say)
    except BaseException:
        store.close()
        raise
    return store


def _upkeep(store: Store, registry: Registry, say: Callable[[str], None]) -> None:
    if store.dropped:
        say(f"warning: the store held {len(store.dropped)} damaged row(s) (a value that is not "
            f"a number or fails its checksum: {_some(store.dropped)}); they were dropped and "
            "`harness run` recomputes what they stood for")
    if store.read_only:
        if store.backfill_pending():
            say("warning: the store is read-only, so the roles and directions that an older "
                "harness did not store are not filled in; open it once with write access")
        return
    for warning in backfill(store, registry):
        say(f"warning: {warning}")


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def report_damage(store: Artifacts, say: Callable[[str], None]) -> None:
    """One line for the artifacts found damaged and deleted, if any, and one for those read
    without a checksum (written by a harness before checksums)."""
    if store.unverified:
        say(f"note: {store.unverified} artifact read(s) had no checksum (written by a harness "
            "before checksums): only their structure was checked; delete the store's "
            "artifacts folder to recompute them with checksums")
    damaged = store.damaged
    if damaged:
        shown = _some(damaged)
        if store.read_only:
            say(f"warning: {len(damaged)} damaged artifact(s) in the read-only store failed to "
                f"load or verify and were left out ({shown}); `harness run` on a writable copy "
                "recomputes them")
        else:
            say(f"warning: {len(damaged)} damaged artifact(s) in the store failed to load or "
                f"verify and were deleted ({shown}); `harness run` recomputes them")


def audit_tasks(plan: Plan, store: Store, run_id: int, say: Callable[[str], None]) -> None:
    """Store the task audit of the run's tasks unless the store has it (a few seconds)."""
    draws = plan.profile.audit_draws
    key = keys.audit_key(plan.tasks, plan.seed, draws, audit.METHOD)
    if store.has_audit(key):
        return
    found = audit.run_audit(plan.tasks, plan.seed, draws)
    store.put_audit(key, [t.name for t in plan.tasks], plan.profile.name, plan.seed, run_id,
                    found.as_dict())
    for t in found.tasks:
        if not t.passes:
            why = t.reason
            say(f"task audit: {t.task}: {why} (bound {t.bound} + {t.margin:.3f} sampling error "
                f"at {t.draws} draws); see `harness tasks --audit`")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def execute(registry: Registry, request: Request, options: Options,
            say: Callable[[str], None], progress: Progress = _silent) -> Outcome:
    """Run ``request``: every usage error is raised (``HarnessError``) before any work."""
    if options.executor != "ray" and options.ray_address:
        raise HarnessError("--ray-address needs --executor ray")
    if options.job_cpus is not None and options.job_cpus < 1:
        raise HarnessError(f"--job-cpus must be >= 1, got {options.job_cpus}")
    if options.job_gpus is not None and not 0 <= options.job_gpus < float("inf"):  # nan too
        raise HarnessError(f"--job-gpus must be a finite number >= 0, got {options.job_gpus}")
    device = pick_device(options.device) if options.executor == "local" else options.device
    # a Ray run settles each encoder's precision=auto here, for every node: one precision
    plan = plan_request(registry, request, settle_device(device)
                        if options.executor == "ray" else device)
    check_claim_samples(plan)  # a sampler short of claim 1's rows: a usage error, before work
    store = Store(options.store)  # validated before anything is printed: errors stay one line
    try:
        return _execute(registry, request, options, say, progress, plan, store, device)
    finally:
        store.close()


def _execute(registry: Registry, request: Request, options: Options,
             say: Callable[[str], None], progress: Progress, plan: Plan, store: Store,
             device: str) -> Outcome:
    started = time.perf_counter()
    CLOCK.reset()
    ray_resources: dict[str, Any] = {}
    if options.executor == "ray":  # each job picks its device on its worker
        ray_resources = ray_executor.resources(options.ray_address, options.device,
                                               options.job_cpus, options.job_gpus)
        if options.device == "auto" and ray_resources.get("gpus"):  # settled for the GPUs
            plan = plan_request(registry, request, "cuda")
    check_writable_out(Path(options.out))
    if options.rank_by is not None:
        leaderboard.check_rank_by(options.rank_by, [label(m) for m in plan.metrics])
    store.sweep_temporary()
    _upkeep(store, registry, say)
    for what, why in plan.skipped:
        say(f"skipped: {what}: {why}")
    commit, packages = provenance(plan, registry)
    seeds = sorted({s for v in plan.variants for s, _ in v.runs} | {plan.seed})
    run_id = store.start_run(options.argv, plan.profile.name, seeds, commit, packages, _now())
    store.put_eval_samples([eval_sample_record(t, plan.profile.name, plan.seed, run_id)
                            for t in plan.tasks])
    with stage("audit"):
        audit_tasks(plan, store, run_id, say)
    outcome = Outcome(Summary(), Path(options.out))
    with progress(len(plan.cells)) as advance:
        runner = Runner(plan, store, run_id, device, options.fail_fast, advance)
        try:
            if options.executor == "ray":
                spec = ray_executor.job_spec(request, options.store, options.device,
                                             options.fail_fast, options.plugins, run_id,
                                             ray_resources, plan.pins)
                outcome.devices = dict(ray_executor.run_on_ray(runner, spec))
            else:
                runner.run()
        except FailFast as err:
            outcome.stopped = str(err)
        outcome.summary = runner.summary
    if outcome.stopped is None:  # CKA to the base, what else is encoded: from the store
        with stage("analysis"), one_blas_thread():
            for what, error, trace in analyse(plan, store, run_id):  # tasks whose labels broke
                outcome.summary.fault(what, error, trace)
            analyse_fits(plan, store, run_id)
            analyse_claims(plan, store, run_id)
    store.finish_run(run_id, _now())
    with stage("report"):
        leaderboard.write(store, outcome.leaderboard, plan.profile.name, plan.seed,
                          {v.key for v in plan.variants}, rank_by=options.rank_by)
    report_damage(store, say)
    outcome.timing = CLOCK.line(time.perf_counter() - started)
    return outcome
