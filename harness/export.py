"""``harness export``: every cell of a store with its metadata, as CSV or JSON.

CSV: one row per cell and metric (``metric_key`` tells apart versions and parameters of a
metric). JSON: an object with ``cells`` (the same rows), ``runs``
(argv, profile, seeds, git commit, package versions, start and finish times), ``analyses`` (CKA to
the base, what else is encoded) and ``merge_stats``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from harness.store import Store

CELL_COLUMNS = ("variant", "encoder", "family", "adapter", "train_task", "seed", "merge", "group",
                "task", "metric", "value", "note", "profile", "eval_seed", "run_id", "cell",
                "metric_key")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def cells(store: Store) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT s.variant, v.encoder, v.family, v.adapter, v.train_task, v.seed, v.merge, "
        "v.grp AS 'group', s.task, s.metric, s.value, s.note, s.profile, s.eval_seed, s.run_id, "
        "s.cell, s.metric_key FROM scores s JOIN variants v ON v.key = s.variant "
        "ORDER BY v.encoder, v.adapter, v.train_task, v.seed, v.merge, s.task, s.metric, s.cell")
    return [{k: _finite(r[k]) for k in CELL_COLUMNS} for r in rows]


def to_csv(store: Store) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CELL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(cells(store))
    return buf.getvalue()


def to_json(store: Store) -> str:
    runs = [dict(r) for r in store.query("SELECT * FROM runs ORDER BY id")]
    for run in runs:
        for key in ("argv", "seeds", "packages"):
            run[key] = json.loads(run[key]) if run.get(key) else None
    analyses = [{k: _finite(r[k]) for k in r.keys()} for r in store.query(
        "SELECT variant, tasks, profile, eval_seed, run_id, kind, name, value, lo, hi "
        "FROM analyses ORDER BY variant, kind, name, pool")]
    for a in analyses:
        a["tasks"] = json.loads(a["tasks"])
    stats = store.merge_stats()
    return json.dumps({"cells": cells(store), "runs": runs, "analyses": analyses,
                       "merge_stats": {k: stats[k] for k in sorted(stats)}},
                      indent=1, sort_keys=True) + "\n"
