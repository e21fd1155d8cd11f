"""Scoring a cell: every metric of the plan on one variant's embeddings of one eval sample.

Each metric's random stream is seeded by the eval sample and the metric, not by the variant:
every variant gets the same probe splits (paired comparisons), and equal embeddings get equal
scores. A metric that decomposes over rows (``Metric.per_sample``) stores its per-row values,
from which the leaderboard bootstraps intervals; one recomputed on the bootstrap resamples
(``Metric.resampled``) stores those draws instead, on the leaderboard's own resamples
(``harness.report.stats.Bootstrap``), so its intervals stay paired across variants. A metric
that raises fails its cell without losing the cell's other metrics (``MetricsRaised``).

An encoder's output is checked where it enters: ``checked_backbone`` makes every ``encode`` and
``embed`` call (an adapter's training, a merge's held-out scoring, the embedding pass) fail with
one line naming the encoder when it does not return one row per sequence.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from typing import Any

import numpy as np

from harness import keys
from harness.api import Backbone, Metric, MetricUndefined
from harness.params import label
from harness.plan import Variant
from harness.report.stats import Bootstrap
from harness.store.queries import Draws
from harness.store.records import ScoreRow


class MetricsRaised(Exception):
    """Some metrics of a cell raised: ``rows`` and ``samples`` hold what the others scored (to
    store), the message names each metric that raised with its error, ``trace`` their
    tracebacks."""

    def __init__(self, errors: list[str], trace: str, rows: list[ScoreRow],
                 samples: dict[str, np.ndarray]):
        super().__init__("; ".join(errors))
        self.trace, self.rows, self.samples = trace, rows, samples


class Metrics:
    """The plan's metrics, each with its content key and label."""

    def __init__(self, metrics: list[Metric]):
        self.entries = [(keys.metric_key(m), label(m), m) for m in metrics]
        self.keys = {mk for mk, _, _ in self.entries}
        self._boot: dict[int, Bootstrap] = {}  # eval seed -> its resamples

    def score(self, X: np.ndarray, y: np.ndarray, eval_key: str, stored: set[str],
              task: str | None = None, seed: int | None = None
              ) -> tuple[list[ScoreRow], dict[str, np.ndarray]]:
        """Rows for the metrics not in ``stored`` (a metric added to a finished run scores only
        itself) and the per-row values of those that decompose, or the ``Draws`` of those
        recomputed on the resamples of ``task``'s eval sample under eval seed ``seed`` (given
        both). A metric that raises anything but ``MetricUndefined`` (from ``score``,
        ``per_sample`` or ``resampled``) is left out, and ``MetricsRaised`` is raised at the end
        with the other metrics' rows: the caller stores them and fails the cell, so that the
        re-run scores only the metrics that raised."""
        rows: list[ScoreRow] = []
        samples: dict[str, np.ndarray] = {}
        errors: list[str] = []
        traces: list[str] = []
        note = "only one class present" if len(np.unique(y)) < 2 else ""
        for mk, name, metric in self.entries:
            if mk in stored:
                continue
            higher = bool(metric.higher_is_better)
            if note:
                rows.append((mk, name, math.nan, note, higher))
                continue
            try:
                row, values = self._one(metric, name, mk, X, y, eval_key, task, seed)
            except (Exception, SystemExit) as err:  # a plugin's sys.exit() fails its cell too
                text = " ".join(str(err).split())
                if not text.startswith(f"metric {name!r}"):  # the harness's own checks name it
                    text += f" (from metric {name!r}: fix it, or raise MetricUndefined where " \
                            "its value is undefined)"
                errors.append(f"{type(err).__name__}: {text}")
                traces.append("".join(traceback.format_exception(err)))
                continue
            rows.append(row)
            if values is not None:
                samples[mk] = values
        if errors:
            raise MetricsRaised(errors, "\n".join(traces), rows, samples)
        return rows, samples

    def _one(self, metric: Metric, name: str, mk: str, X: np.ndarray, y: np.ndarray,
             eval_key: str, task: str | None, seed: int | None
             ) -> tuple[ScoreRow, np.ndarray | None]:
        """One metric's row, and its per-row values or draws (None: neither)."""
        higher = bool(metric.higher_is_better)
        seeded = keys.metric_seed(eval_key, mk)
        rng = np.random.default_rng(seeded)
        out: np.ndarray | None = None
        try:
            per = metric.per_sample(X, y, rng)
            if per is None:
                value = number(name, "score", metric.score(X, y, rng))
            else:
                per = numbers(name, "per_sample", per)
                if per.shape != (len(y),):
                    raise ValueError(f"metric {name!r}: per_sample returned shape "
                                     f"{per.shape}, expected ({len(y)},)")
                finite = per[np.isfinite(per)]
                value = float(finite.mean()) if finite.size else math.nan
                out = per
        except MetricUndefined as why:
            return (mk, name, math.nan, str(why) or "undefined", higher), None
        row = (mk, name, value, "" if math.isfinite(value)
               else "metric returned a non-finite value", higher)
        if task is not None and seed is not None and math.isfinite(value) \
                and _resamples(metric):
            counts = self._counts(seed, task, len(y))
            with contextlib.suppress(MetricUndefined):  # then no interval, as before
                draws = metric.resampled(X, y, np.random.default_rng(seeded), counts)
                if draws is not None:
                    out = _checked_draws(name, draws, len(counts))
        return row, out

    def _counts(self, seed: int, task: str, n: int) -> np.ndarray:
        if seed not in self._boot:
            self._boot[seed] = Bootstrap(seed)
        return self._boot[seed].counts(task, n)


def _resamples(metric: Metric) -> bool:
    return type(metric).resampled is not Metric.resampled


#: what a metric's score may be: a real number (a bool or a string is a mistake, not a score)
REAL = (int, float, np.integer, np.floating)


def number(metric: str, method: str, value: Any) -> float:
    """A metric's score as a float, or a one-line error naming the metric when it is not a
    real number (``"0.75"`` and ``True`` are refused, not converted)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, REAL):
        raise TypeError(f"metric {metric!r}: {method} returned {value!r} "
                        f"({type(value).__name__}), not a number; return a float")
    return float(value)


def numbers(metric: str, method: str, values: Any) -> np.ndarray:
    """A metric's per-row values or draws as float64: numbers (booleans count 0/1, None is
    NaN), or a one-line error naming the metric (strings are refused, not parsed)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "O" and all(v is None or (isinstance(v, REAL) and not isinstance(
            v, bool | np.bool_)) for v in arr.flat):
        return arr.astype(np.float64)  # None as NaN, as before
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"metric {metric!r}: {method} returned values of dtype {arr.dtype}, "
                        "not numbers; return floats")
    return arr.astype(np.float64)


def _checked_draws(name: str, draws: np.ndarray, resamples: int) -> np.ndarray:
    draws = numbers(name, "resampled", draws)
    if draws.shape != (resamples,):
        raise ValueError(f"metric {name!r}: resampled returned shape {draws.shape}, expected "
                         f"({resamples},): one value per resample")
    return draws.view(Draws)


def checked_rows(encoder: str, X: Any, rows: int, method: str = "embed/encode") -> Any:
    """``X`` (an array or tensor) if its shape is (rows, dim), else a one-line error naming the
    encoder and its method that returned it."""
    shape = getattr(X, "shape", None)
    shape = tuple(np.shape(X) if shape is None else shape)
    if len(shape) != 2 or shape[0] != rows or shape[1] < 1:
        raise ValueError(f"encoder {encoder!r} returned embeddings of shape {shape}, expected "
                         f"({rows}, dim); fix its Backbone.{method}")
    return X


def checked_backbone(encoder: str, backbone: Backbone) -> Backbone:
    """``backbone`` with its ``encode`` and ``embed`` checked to return one row per sequence
    wherever they are called: an adapter's training, a merge's held-out scoring, the embedding
    pass (``Backbone.embed`` calls the checked ``encode``). A wrong count then fails the cells
    with one line naming the encoder instead of a torch or zip error further on."""
    encode, embed = backbone.encode, backbone.embed

    def checked_encode(seqs: Any) -> Any:
        return checked_rows(encoder, encode(seqs), len(seqs), "encode")

    def checked_embed(seqs: Any, *args: Any, **kwargs: Any) -> Any:
        return checked_rows(encoder, embed(seqs, *args, **kwargs), len(seqs), "embed")

    # a backbone that takes no attributes stays unchecked here; the embedding pass still is
    with contextlib.suppress(AttributeError, TypeError):
        backbone.encode = checked_encode  # type: ignore[method-assign]
        backbone.embed = checked_embed  # type: ignore[method-assign]
    return backbone


def checked_embeddings(variant: Variant, X: Any, rows: int) -> np.ndarray:
    """An encoder's output as float32 (rows, dim), all finite, or a one-line error."""
    X = checked_rows(variant.encoder.name, np.asarray(X), rows)
    X = X.astype(np.float32, copy=False)
    bad = int((~np.isfinite(X)).any(axis=1).sum())
    if bad:
        by = f"merge {variant.merge.name!r} on " if variant.merge else ""
        raise ValueError(f"{by}encoder {variant.encoder.name!r} gave NaN or inf embeddings "
                         f"for {bad} of {rows} sequences; fix the plugin (for an encoder "
                         "with a precision parameter, try precision=fp32)")
    return X
