"""The named reads of the results database (``ResultsReader``): every SELECT the harness runs,
each returning typed records. A row that does not parse (damaged by hand) is never used."""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from typing import Any

import numpy as np

from harness.store.records import (
    AnalysisRecord,
    EvalSampleRecord,
    FailureRecord,
    RunRecord,
    ScoreRecord,
    VariantRecord,
)


def _loads(text: Any, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except (TypeError, ValueError):
        return default


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


class Draws(np.ndarray):
    """A ``samples`` blob of kind 'draws': a metric recomputed on each of the leaderboard's
    shared bootstrap resamples (``Metric.resampled``), not per-row values. A plain array viewed
    as this type (``np.asarray(draws).view(Draws)``) is written with that kind and read back
    as it; every other blob is per-row values."""


class Queries:
    """Mixed into ``Store``: reads over ``self.db``."""

    db: sqlite3.Connection

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            return list(self.db.execute(sql, args))
        finally:
            self.db.row_factory = None

    # ------------------------------------------------------------------------------- runs

    def runs(self) -> list[RunRecord]:
        return [self._run(r) for r in self._rows("SELECT * FROM runs ORDER BY id")]

    def latest_run(self, profile: str | None = None) -> RunRecord | None:
        where, args = ("WHERE profile = ? ", (profile,)) if profile is not None else ("", ())
        found = self._rows(f"SELECT * FROM runs {where}ORDER BY id DESC LIMIT 1", args)
        return self._run(found[0]) if found else None

    @staticmethod
    def _run(r: sqlite3.Row) -> RunRecord:
        return RunRecord(r["id"], r["started"], r["finished"], _loads(r["argv"], None),
                         r["profile"], _loads(r["seeds"], None), r["git_commit"],
                         _loads(r["packages"], {}))

    # --------------------------------------------------------------------- variants, cells

    def variants(self) -> dict[str, VariantRecord]:
        return {r["key"]: VariantRecord(r["key"], r["encoder"], r["family"], r["adapter"],
                                        r["train_task"], r["seed"], r["merge"], r["grp"],
                                        r["profile"], _loads(r["info"], {}),
                                        _loads(r["roles"], {}))
                for r in self._rows("SELECT * FROM variants ORDER BY key")}

    def latest_eval_seed(self, profile: str) -> int | None:
        found = self._rows("SELECT eval_seed FROM scores WHERE profile = ? ORDER BY run_id DESC "
                           "LIMIT 1", (profile,))
        return int(found[0]["eval_seed"]) if found else None

    def scores(self, profile: str | None = None, eval_seed: int | None = None
               ) -> list[ScoreRecord]:
        """Score rows in the order they were written (by run, then row)."""
        where = "WHERE profile = ? AND eval_seed = ? " if profile is not None else ""
        args = (profile, eval_seed) if profile is not None else ()
        out = []
        for r in self._rows(f"SELECT * FROM scores {where}ORDER BY run_id, rowid", args):
            higher = r["higher_is_better"]
            out.append(ScoreRecord(r["cell"], r["metric_key"], r["variant"], r["task"],
                                   r["metric"], _num(r["value"]), r["note"] or "",
                                   r["profile"], r["eval_seed"], r["run_id"],
                                   None if higher is None else bool(higher)))
        return out

    def stored_metrics(self, cell: str) -> set[str]:
        """The metric keys already scored for ``cell``."""
        return {r[0] for r in self.db.execute("SELECT metric_key FROM scores WHERE cell=?",
                                              (cell,))}

    def samples(self, cells: set[str] | None = None) -> dict[tuple[str, str], np.ndarray]:
        """(cell, metric_key) -> per-row values, or ``Draws`` where the blob's kind is 'draws',
        for the given cells (default all)."""
        out = {}
        for cell, mk, n, data, kind in self.db.execute(
                "SELECT cell, metric_key, n, data, kind FROM samples"):
            if cells is not None and cell not in cells:
                continue
            if kind not in (None, "rows", "draws"):
                continue  # written by a newer harness: not ours to read
            values = np.frombuffer(data, dtype="<f4")
            if len(values) == n:  # a short blob is never used
                values = values.astype(np.float64)
                out[(cell, mk)] = values.view(Draws) if kind == "draws" else values
        return out

    def failures(self, profile: str, eval_seed: int) -> list[FailureRecord]:
        return [FailureRecord(r["cell"], r["variant"], r["task"], r["error"] or "",
                              r["profile"], r["eval_seed"], r["run_id"])
                for r in self._rows("SELECT * FROM failures WHERE profile = ? AND eval_seed = ? "
                                    "ORDER BY rowid", (profile, eval_seed))]

    # ------------------------------------------------------------------ analyses, merges

    def analysed(self, pool: str) -> set[str]:
        """Variants with analyses stored for this evaluation pool."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT variant FROM analyses WHERE "
                                              "pool=?", (pool,))}

    def analyses(self, profile: str | None = None, eval_seed: int | None = None
                 ) -> list[AnalysisRecord]:
        """Ordered by variant, kind, name, pool."""
        where = "WHERE profile = ? AND eval_seed = ? " if profile is not None else ""
        args = (profile, eval_seed) if profile is not None else ()
        return [AnalysisRecord(r["variant"], r["pool"], _loads(r["tasks"], []), r["profile"],
                               r["eval_seed"], r["run_id"], r["kind"], r["name"],
                               _num(r["value"]), _num(r["lo"]), _num(r["hi"]))
                for r in self._rows(f"SELECT * FROM analyses {where}ORDER BY variant, kind, "
                                    "name, pool", args)]

    def merge_stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for variant, text in self.db.execute("SELECT variant, stats FROM merge_stats"):
            # a damaged row is never used
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                stats = json.loads(text)
                out[variant] = {str(k): float(v) for k, v in stats.items()}
        return out

    # ---------------------------------------------------------------------- eval samples

    def eval_samples(self, profile: str, eval_seed: int) -> dict[str, EvalSampleRecord]:
        """Task name -> its eval sample as the latest run that drew it recorded it."""
        out: dict[str, EvalSampleRecord] = {}
        for r in self._rows("SELECT * FROM eval_samples WHERE profile = ? AND eval_seed = ? "
                            "ORDER BY run_id, key", (profile, eval_seed)):
            seqs, labels = _loads(r["sequences"], None), _loads(r["labels"], None)
            if not isinstance(seqs, list) or not isinstance(labels, list) or \
                    len(seqs) != len(labels):
                continue
            out[r["task"]] = EvalSampleRecord(r["key"], r["task"], r["profile"], r["eval_seed"],
                                              r["run_id"], _loads(r["info"], {}),
                                              [tuple(s) for s in seqs], labels)
        return out

    def unsampled_tasks(self) -> list[tuple[str, str, int, int]]:
        """(task, profile, eval seed, latest run id) of scored tasks with no eval sample row:
        what a store from before eval samples were stored lacks."""
        return [(r["task"], r["profile"], r["eval_seed"], r["run_id"]) for r in self._rows(
            "SELECT task, profile, eval_seed, max(run_id) AS run_id FROM scores s WHERE NOT "
            "EXISTS (SELECT 1 FROM eval_samples e WHERE e.task = s.task AND e.profile = "
            "s.profile AND e.eval_seed = s.eval_seed) GROUP BY task, profile, eval_seed "
            "ORDER BY task, profile, eval_seed")]

    def undirected_metrics(self) -> list[str]:
        """Metric labels with scores whose direction is not recorded."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT metric FROM scores WHERE "
                                              "higher_is_better IS NULL ORDER BY metric")]

    def roleless_variants(self) -> dict[str, dict[str, Any]]:
        """Variant key -> its stored identities, for variants whose roles are not recorded, or
        only in part (a component was not installed when they were backfilled)."""
        return {r["key"]: _loads(r["info"], {}) for r in self._rows(
            "SELECT key, info FROM variants WHERE roles IS NULL OR instr(roles, "
            "'\"partial\": true') > 0 ORDER BY key")}

    # ----------------------------------------------------------------------------- audits

    def has_audit(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM audits WHERE key = ?", (key,)).fetchone() \
            is not None

    def audit(self, tasks: list[str], eval_seed: int) -> dict[str, Any] | None:
        """The latest stored task audit of exactly these tasks (names) and seed, as
        ``harness.audit.Audit.as_dict`` wrote it; None where there is none."""
        wanted = json.dumps(sorted(tasks))
        for r in self._rows("SELECT tasks, data FROM audits WHERE eval_seed = ? "
                            "ORDER BY run_id DESC, key", (eval_seed,)):
            data = _loads(r["data"], None)
            if json.dumps(sorted(_loads(r["tasks"], []))) == wanted and isinstance(data, dict):
                return data
        return None

