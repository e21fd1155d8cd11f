"""``--executor ray``: the plan's independent jobs as Ray tasks.

A *job* is everything that shares a training run: the variants of one (encoder, adapter,
train task) with all their seeds and merges, or one encoder's base variant. Jobs share no
intermediate result, so they run anywhere in any order. A worker rebuilds the plan from the
command's own arguments (plain strings and numbers cross the wire, never components or
tensors), computes its job with the same ``Runner`` the local executor uses, writes its
artifacts to the store directory (a shared file system on a cluster) and returns its database
records; the driver is the only writer of ``results.sqlite``. A job that dies on its worker is
recorded against its cells with its error, and the others go on.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

from harness import keys
from harness.api import HarnessError
from harness.extras import extra_samples
from harness.plan import Cell, Plan, Variant, plan_request
from harness.registry import load_registry
from harness.run import FailFast, Runner, pick_device
from harness.selection import Request
from harness.settle import on_worker
from harness.store import Artifacts
from harness.store.records import ScoreRow, VariantRecord, Where


class JobStore(Artifacts):
    """A worker's view of the store (a ``RunStore``): artifacts on disk, database writes
    recorded for the driver, the metrics already stored per cell as the driver saw them."""

    def __init__(self, root: str, stored: dict[str, list[str]]):
        super().__init__(root)
        self.stored = stored
        self.records: list[tuple[str, tuple[Any, ...]]] = []

    def stored_metrics(self, cell: str) -> set[str]:
        return set(self.stored.get(cell, ()))

    def put_variant(self, record: VariantRecord) -> None:
        pass  # the driver recorded every variant of the plan

    def put_scores(self, cell: str, variant: str, task: str, where: Where,
                   scores: list[ScoreRow], samples: dict[str, np.ndarray] | None = None
                   ) -> None:
        self.records.append(("put_scores", (cell, variant, task, where, scores, samples or {})))

    def put_failure(self, cell: str, variant: str, task: str, error: str,
                    where: Where) -> None:
        self.records.append(("put_failure", (cell, variant, task, error, where)))

    def put_merge_stats(self, variant: str, stats: dict[str, float]) -> None:
        self.records.append(("put_merge_stats", (variant, stats)))


def jobs(plan: Plan, todo: dict[str, list[Cell]]) -> list[list[Variant]]:
    """The variants with cells to compute, grouped into independent jobs (plan order)."""
    groups: dict[str, list[Variant]] = {}
    for variant in plan.variants:
        if variant.key not in todo:
            continue
        group = (keys.identity(variant.encoder),
                 keys.identity(variant.adapter) if variant.adapter else None,
                 variant.train_task.name if variant.train_task else None)
        groups.setdefault(keys.content_hash("job", group), []).append(variant)
    return list(groups.values())


def subplan(plan: Plan, variant_keys: list[str]) -> Plan:
    wanted = set(variant_keys)
    return replace(plan, variants=[v for v in plan.variants if v.key in wanted],
                   cells=[c for c in plan.cells if c.variant.key in wanted])


def run_job(spec: dict[str, Any], variant_keys: list[str], stored: dict[str, list[str]]
            ) -> dict[str, Any]:
    """On a worker: rebuild the plan, compute the job's variants, return the records."""
    import torch

    torch.set_num_threads(spec["threads"])
    if spec["disabled"] is not None:
        os.environ["HARNESS_DISABLE_PLUGINS"] = spec["disabled"]
    if spec.get("only") is not None:  # the driver's HARNESS_ONLY_DISTRIBUTIONS
        os.environ["HARNESS_ONLY_DISTRIBUTIONS"] = spec["only"]
    reg = load_registry(spec["plugins"])
    device = pick_device(spec["device"])
    notes: list[str] = []
    settle = on_worker(spec.get("pins", []), device, notes)
    plan = plan_request(reg, Request.from_dict(spec["request"]), settle=settle)
    missing = set(variant_keys) - {v.key for v in plan.variants}
    if missing:
        raise HarnessError("the worker planned other variants than the driver; install the "
                           "same harness and plugins on every node")
    store = JobStore(spec["store"], stored)
    runner = Runner(subplan(plan, variant_keys), store, spec["run_id"], device,
                    spec["fail_fast"], extras=extra_samples(plan))
    stopped = None
    try:
        runner.run()  # what the driver saw stored is reused here too
    except FailFast as err:
        stopped = str(err)
    summary = runner.summary
    return {"records": store.records, "computed": summary.computed, "failed": summary.failed,
            "failures": summary.failures, "stopped": stopped, "device": runner.device,
            "damaged": store.damaged, "unverified": store.unverified, "notes": notes}


def connect(address: str | None) -> Any:
    """Join the cluster at ``address``, or start a local Ray instance."""
    try:
        import ray
    except ImportError:
        raise HarnessError("--executor ray needs Ray: pip install 'numgeo-harness[ray]'"
                           ) from None
    _reachable(address)
    if ray.is_initialized():  # this process joined or started one already
        return ray
    import logging

    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False,
                               "include_dashboard": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", object_store_memory=256 * 2**20, **options)
    except Exception as err:  # noqa: BLE001 - any failure to connect is the user's to fix
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        hint = ("; a cluster with token authentication (the default of `ray start` from Ray "
                "2.59) needs RAY_AUTH_MODE=token here too, or --ray-address auto on its head "
                "node") if address else ""
        raise HarnessError(f"cannot {where}: {' '.join(str(err).split())[:300]}{hint}"
                           ) from None
    return ray


def _reachable(address: str | None, timeout_s: float = 10.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) that nothing answers at is an error at once
    (``ray.init`` would retry for minutes)."""
    import re

    found = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address or "")
    if not found:
        return
    try:
        socket.create_connection((found[1], int(found[2])), timeout=timeout_s).close()
    except OSError as err:
        raise HarnessError(f"cannot join the Ray cluster at {address}: {err.strerror or err}; "
                           "start one with `ray start --head` and pass the address it prints"
                           ) from None


def gpus_per_job(ray: Any, device: str, requested: float | None) -> float:
    """``requested``, else one GPU per job when the cluster has GPUs and the device allows."""
    if requested is not None:
        return requested
    if device != "auto" and not device.startswith("cuda"):
        return 0.0
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def cpus_per_job(ray: Any, requested: int | None) -> int:
    """``requested``, else the torch threads of a local run here (equal thread counts give
    bit-identical results); never more than the largest node has."""
    import torch

    largest = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]),
                  default=1)
    if requested is not None and requested > largest:
        raise HarnessError(f"--job-cpus {requested}: the largest Ray node has {largest} CPUs")
    return requested or max(1, min(torch.get_num_threads(), largest))


def resources(address: str | None, device: str, job_cpus: int | None,
              job_gpus: float | None) -> dict[str, Any]:
    """Join or start Ray and settle what each job asks for, before the run starts (so that
    every problem here is a usage error)."""
    import torch

    ray = connect(address)
    if device != "auto":
        try:
            kind = torch.device(device).type
        except (RuntimeError, ValueError):
            raise HarnessError(f"--device {device!r} is not a device torch knows; use "
                               "auto, cpu, cuda or cuda:N") from None
        if kind not in ("cpu", "cuda"):  # what Ray schedules: CPUs and GPUs
            raise HarnessError(f"--device {device!r}: Ray jobs run on cpu or cuda; use auto, "
                               "cpu, cuda or cuda:N")
        if kind == "cuda" and ray.cluster_resources().get("GPU", 0) < 1:
            raise HarnessError(f"--device {device!r} but the Ray cluster has no GPU; use "
                               "auto or cpu")
    return {"threads": cpus_per_job(ray, job_cpus),
            "gpus": gpus_per_job(ray, device, job_gpus)}


def run_on_ray(runner: Runner, spec: dict[str, Any]) -> Counter[str]:
    """Compute what the runner's plan still needs as Ray tasks (``job_spec``); records land in
    the runner's store and summary as jobs finish. ``FailFast`` (with ``--fail-fast``) after the
    first failed job, the others cancelled. Returns how many jobs ran on each device."""
    import ray

    todo = runner.pending()
    groups = jobs(runner.plan, todo)
    devices: Counter[str] = Counter()
    if not groups:
        return devices
    task = ray.remote(run_job).options(num_cpus=spec["threads"], num_gpus=spec["gpus"],
                                       max_retries=0)
    pending: dict[Any, list[str]] = {}
    # cross-task merges (``over=tasks``) pool the single-task jobs' training runs: they go in a
    # second wave, once those runs are stored, so that no run is trained twice at once
    waves = [[g for g in groups if not any(v.run_tasks for v in g)],
             [g for g in groups if any(v.run_tasks for v in g)]]

    def submit(wave: list[list[Variant]]) -> None:
        for variants in wave:
            wanted = [v.key for v in variants]
            stored = {c.key: sorted(runner.stored[c.key]) for c in runner.plan.cells
                      if c.variant.key in wanted}
            pending[task.remote(spec, wanted, stored)] = wanted

    submit(waves.pop(0))
    try:
        while pending or waves:
            if not pending:
                submit(waves.pop(0))
                continue
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cells = [c for k in pending.pop(ref) for c in todo[k]]
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - the worker's error, recorded
                    cause = getattr(err, "cause", None) or err
                    for cell in cells:
                        runner.fail(cell, _JobFailed(cause))
                    continue
                _replay(runner, result)
                devices[result["device"]] += 1
                runner.advance(result["computed"] + result["failed"])
                if result["stopped"]:
                    raise FailFast(result["stopped"])
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    return devices


class _JobFailed(Exception):
    """A job that failed as a whole on its worker (the worker died, or the job raised outside
    any cell): its cause, named in one line."""

    def __init__(self, cause: BaseException):
        super().__init__(f"the job failed on its Ray worker: {type(cause).__name__}: "
                         f"{' '.join(str(cause).split())[:500]}")


def _replay(runner: Runner, result: dict[str, Any]) -> None:
    for method, args in result["records"]:
        if method == "put_scores":
            cell, variant, task, where, rows, samples = args
            runner.store.put_scores(cell, variant, task, tuple(where), rows,
                                    {k: np.asarray(v) for k, v in samples.items()})
        else:
            getattr(runner.store, method)(*args)
    runner.summary.computed += result["computed"]
    runner.summary.failed += result["failed"]
    runner.summary.failures += [tuple(f) for f in result["failures"]]
    for note in result.get("notes", []):
        if note not in runner.summary.notes:
            runner.summary.notes.append(note)
    store = runner.store
    if isinstance(store, Artifacts):  # what the worker found damaged, reported by the driver
        store.damaged += [p for p in result.get("damaged", []) if p not in store.damaged]
        store.unverified += int(result.get("unverified", 0))


def job_spec(request: Request, store: str, device: str, fail_fast: bool, plugins: list[str],
             run_id: int, resources: dict[str, Any],
             pins: list[tuple[dict[str, Any], dict[str, Any]]] | None = None) -> dict[str, Any]:
    """What a worker needs to rebuild the plan: the request, the options (absolute paths) and
    the driver's settled encoder choices (``Plan.pins``)."""
    return {"request": request.to_dict(), "device": device, "fail_fast": fail_fast,
            "pins": [list(p) for p in pins or []],
            "plugins": [os.path.abspath(p) for p in plugins], "store": os.path.abspath(store),
            "run_id": run_id, "disabled": os.environ.get("HARNESS_DISABLE_PLUGINS"),
            "only": os.environ.get("HARNESS_ONLY_DISTRIBUTIONS"), **resources}
