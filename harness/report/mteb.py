"""``harness export --format mteb DIR``: a store's scores as MTEB results files, so that tools
which read MTEB results (``mteb.ResultCache(DIR).load_results()``, ``TaskResult.from_disk``)
read ours. **MTEB-shaped, not MTEB tasks**: the tasks are the harness's (number-theoretic
properties of integer sequences), scored by the harness's metrics on its own eval samples; MTEB
ran none of it, and what in mteb looks a task up in its registry (``TaskResult.task``,
``.domains``, ``get_aggregated_scores``, ``load_results(validate_and_filter=True)``) raises
KeyError on them.

The folder is laid out as an MTEB results cache: ``DIR/results/MODEL/REVISION/TASK.json``, one
file per (variant, eval task), and ``model_meta.json`` (a valid ``ModelMeta``) beside each
variant's files. MODEL is ``numgeo-harness__``, the variant's lineage (encoder, adapter, train
task, seed, merge) and the first 8 characters of its key; REVISION is its key. A file is
MTEB's ``TaskResult``:

- ``task_name``: the harness's task; ``dataset_revision``: the key of its eval sample (the
  task, profile and eval seed it was drawn with); one split, ``test`` (the eval sample), one
  subset, ``default``, language ``zxx-Zyyy`` (no linguistic content; digits);
- ``main_score``: the leaderboard's primary metric (``main_score_metric`` names it), and beside
  it every stored metric by name (NaN where undefined, as mteb writes it), ``ci95`` (metric ->
  its 95% paired bootstrap interval over the eval rows, as on the leaderboard, for each metric
  with per-row values or draws stored), ``higher_is_better``, ``n_rows`` and ``notes``;
- ``mteb_version``: null (MTEB did not evaluate it); ``evaluation_time``: null (the store keeps
  no time per cell: one embedding pass of a variant serves every task);
  ``kg_co2_emissions``: null; ``date``: when the run that scored it finished;
- ``numgeo_harness``: the variant's key and lineage (every component's identity), profile, eval
  seed, and the run's id, git commit and harness version (MTEB's reader ignores this key).

Only the scores of one profile and eval seed are written (default: the latest run's, as the
leaderboard), since MTEB's layout has one file per model revision and task.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import keys
from harness.api import HarnessError
from harness.report import paper
from harness.report.stored import Scored, scored
from harness.store.records import (
    EvalSampleRecord,
    ResultsReader,
    RunRecord,
    ScoreRecord,
    VariantRecord,
)

SPLIT, SUBSET = "test", "default"
LANGUAGES = ["zxx-Zyyy"]  # ISO 639-3 zxx (no linguistic content), ISO 15924 Zyyy (common)
PREFIX = "numgeo-harness"
#: the keys of an MTEB score entry of ours; a metric of one of these names is written as
#: ``metric:NAME`` (which no metric's label can be: a label's ``:`` is followed by ``k=v``)
RESERVED = {"main_score", "main_score_metric", "hf_subset", "languages", "mteb_version",
            "ci95", "higher_is_better", "n_rows", "notes"}
NOTE = ("MTEB-shaped, not MTEB tasks: a numgeo-harness task scored by the harness's metrics "
        "on its own eval sample; MTEB ran none of it")


def model_name(v: VariantRecord) -> str:
    """``numgeo-harness/``, the variant's lineage in characters a folder name takes, and the
    first 8 characters of its key (two variants never share a name)."""
    parts = [v.encoder]
    if v.adapter != "none":
        parts += [v.adapter, v.train_task or "", "" if v.seed is None else f"seed{v.seed}"]
    if v.merge != "none":
        parts.append(v.merge)
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", "-".join(p for p in parts if p))[:100].strip("-.")
    return f"{PREFIX}/{slug or 'variant'}-{v.key[:8]}"


def check_task_name(task: str) -> None:
    """A task's name becomes a file name, ``TASK.json``, beside ``model_meta.json``."""
    if not task or "/" in task or "\\" in task or task.startswith(".") or \
            task == "model_meta" or len(task.encode()) > 200:
        raise HarnessError(f"task {task!r} cannot name an MTEB results file (TASK.json beside "
                           "model_meta.json); rename the task")


def _timestamp(run: RunRecord | None) -> float | None:
    if run is None or not run.finished:
        return None
    try:
        return datetime.fromisoformat(run.finished).timestamp()
    except ValueError:
        return None


def task_result(v: VariantRecord, task: str, found: dict[str, Scored], primary: str,
                sample: EvalSampleRecord | None, run: RunRecord | None) -> dict[str, Any]:
    """One (variant, task)'s file: MTEB's ``TaskResult`` as JSON, of the eval sample
    ``sample`` (None: not stored) scored by the run ``run``. A score that is not a number (a
    metric undefined there, or missing) is written NaN, as mteb writes it."""
    entry: dict[str, Any] = {"main_score": found[primary].record.value if primary in found
                             else math.nan, "main_score_metric": primary}
    ci, higher, notes = {}, {}, {}
    for metric in sorted(found):
        s = found[metric]
        entry[metric if metric not in RESERVED else f"metric:{metric}"] = s.record.value
        if s.interval is not None:
            ci[metric] = list(s.interval)
        if s.record.higher_is_better is not None:
            higher[metric] = s.record.higher_is_better
        if s.record.note:
            notes[metric] = s.record.note
    entry.update({"ci95": ci, "higher_is_better": higher,
                  "n_rows": len(sample.sequences) if sample else None, "notes": notes,
                  "hf_subset": SUBSET, "languages": LANGUAGES})
    return {"dataset_revision": sample.key if sample else "", "task_name": task,
            "mteb_version": None, "scores": {SPLIT: [entry]}, "evaluation_time": None,
            "kg_co2_emissions": None, "date": _timestamp(run),
            "numgeo_harness": {
                "note": NOTE, "variant": v.key, "profile": sample.profile if sample else None,
                "eval_seed": sample.eval_seed if sample else None,
                "run_id": run.id if run else None, "git_commit": run.git_commit if run else None,
                "harness_version": run.packages.get("numgeo-harness") if run else None,
                "encoder": v.encoder, "family": v.family, "precision": v.precision,
                "adapter": v.adapter, "train_task": v.train_task, "seed": v.seed,
                "merge": v.merge, "group": v.group, "components": v.info}}


def model_meta(v: VariantRecord) -> dict[str, Any]:
    """``model_meta.json``: the fields of MTEB's ``ModelMeta`` (it validates as one) the store
    knows: name, revision, language, modality; the lineage is in each result file."""
    return {"name": model_name(v), "revision": v.key, "loader": None, "release_date": None,
            "languages": LANGUAGES, "n_parameters": None, "memory_usage_mb": None,
            "max_tokens": None, "embed_dim": None, "license": None, "open_weights": None,
            "public_training_code": None, "public_training_data": None, "framework": [],
            "reference": None, "similarity_fn_name": None, "use_instructions": False,
            "training_datasets": None, "adapted_from": None, "modalities": ["text"],
            "model_type": ["dense"]}


def files(store: ResultsReader, profile: str | None = None, seed: int | None = None
          ) -> tuple[dict[str, str], str, int]:
    """(relative path -> JSON text, profile, eval seed) of the export. A variant's scores on a
    task are those of its cell of the task's eval sample as the latest run drew it (rows of an
    eval sample drawn before, e.g. by an earlier version of the task, are left out)."""
    if profile is None:
        latest = store.latest_run()
        if latest is None:
            raise HarnessError("the store holds no run; `harness run` first")
        profile = latest.profile
    elif store.latest_run(profile) is None:
        raise HarnessError(f"the store has no run of profile {profile!r}; leave out --profile "
                           "for its latest run's")
    if seed is None:
        seed = store.latest_eval_seed(profile) or 0
    variants, runs = store.variants(), {r.id: r for r in store.runs()}
    samples = store.eval_samples(profile, seed)

    def of_sample(s: ScoreRecord) -> bool:
        sample = samples.get(s.task)
        return s.variant in variants and (sample is None or
                                          s.cell == keys.cell_key(s.variant, sample.key))

    by_cell: dict[tuple[str, str], dict[str, Scored]] = {}
    for (variant, task, metric), s in scored(store, profile, seed, keep=of_sample).items():
        by_cell.setdefault((variant, task), {})[metric] = s
    if not by_cell:
        raise HarnessError(f"the store holds no scores of profile {profile!r}, eval seed {seed}")
    primary = paper.primary_metric(sorted({m for found in by_cell.values() for m in found}))
    out: dict[str, str] = {}
    for (key, task), found in sorted(by_cell.items()):
        check_task_name(task)
        v = variants[key]
        folder = f"results/{model_name(v).replace('/', '__')}/{key}"
        run = runs.get(max(s.record.run_id for s in found.values()))
        doc = task_result(v, task, found, primary, samples.get(task), run)
        out[f"{folder}/{task}.json"] = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        out[f"{folder}/model_meta.json"] = json.dumps(model_meta(v), indent=2,
                                                      sort_keys=True) + "\n"
    return out, profile, seed


def write(folder: Path, found: dict[str, str]) -> None:
    """Write ``files``' texts into the new folder ``folder``."""
    for rel, text in found.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def counts(found: dict[str, str]) -> tuple[int, int]:
    """(results files, variants) of ``files``' export."""
    metas = sum(rel.endswith("/model_meta.json") for rel in found)
    return len(found) - metas, metas
