"""``harness export``: every cell of a store with its metadata, as CSV or JSON.

CSV: one row per cell and metric (``metric_key`` tells apart versions and parameters of a
metric). A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
(which a spreadsheet would run as a formula: a component named ``@SUM(1+1)``) is written with a
leading ``'``, as spreadsheets show it; numbers are written as they are (``-0.25`` stays a
number). JSON, which holds every string unchanged: an object with ``cells`` (the same rows),
``runs`` (argv, profile, seeds, git commit, package versions, start and finish times),
``analyses`` (CKA to the base, what else is encoded) and ``merge_stats``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from typing import Any

from harness.store.records import ResultsReader

CELL_COLUMNS = ("variant", "encoder", "family", "precision", "adapter", "train_task", "seed",
                "merge", "group", "task", "metric", "value", "note", "profile", "eval_seed",
                "run_id", "cell", "metric_key", "higher_is_better")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _nulls_first(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)


def cells(store: ResultsReader) -> list[dict[str, Any]]:
    variants = store.variants()
    out = []
    for s in store.scores():
        v = variants.get(s.variant)
        if v is None:
            continue
        out.append({"variant": s.variant, "encoder": v.encoder, "family": v.family,
                    "precision": v.precision,
                    "adapter": v.adapter, "train_task": v.train_task, "seed": v.seed,
                    "merge": v.merge, "group": v.group, "task": s.task, "metric": s.metric,
                    "value": _finite(s.value), "note": s.note, "profile": s.profile,
                    "eval_seed": s.eval_seed, "run_id": s.run_id, "cell": s.cell,
                    "metric_key": s.metric_key, "higher_is_better": s.higher_is_better})
    out.sort(key=lambda c: (c["encoder"], c["adapter"], _nulls_first(c["train_task"]),
                            _nulls_first(c["seed"]), c["merge"], c["task"], c["metric"],
                            c["cell"]))
    return out


#: how a spreadsheet formula starts (CSV injection); a text cell so starting gets a ``'``
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: Any) -> Any:
    """``value`` for a CSV cell: a string a spreadsheet would run as a formula, quoted with a
    leading ``'``; numbers, None and other strings unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def to_csv(store: ResultsReader) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CELL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: text_cell(v) for k, v in cell.items()} for cell in cells(store))
    return buf.getvalue()


def to_json(store: ResultsReader) -> str:
    runs = [dataclasses.asdict(r) for r in store.runs()]
    analyses = [{"variant": a.variant, "tasks": a.tasks, "profile": a.profile,
                 "eval_seed": a.eval_seed, "run_id": a.run_id, "kind": a.kind, "name": a.name,
                 "value": _finite(a.value), "lo": _finite(a.lo), "hi": _finite(a.hi)}
                for a in store.analyses()]
    stats = store.merge_stats()
    return json.dumps({"cells": cells(store), "runs": runs, "analyses": analyses,
                       "merge_stats": {k: stats[k] for k in sorted(stats)}},
                      indent=1, sort_keys=True) + "\n"
