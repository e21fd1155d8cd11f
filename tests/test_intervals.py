"""Intervals: the two-level bootstrap over training seeds and eval rows, draws recomputed on the
shared resamples (stored as samples.kind = 'draws'), silhouette's linearised per-row values and
the k-means agreement tables. Coverage itself is measured by bench/intervals.py."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from harness.keys import metric_seed
from harness.plugins.cluster_metrics import Silhouette, silhouette_rows
from harness.plugins.kmeans_metrics import KMeansARI, KMeansNMI, ari, contingency, nmi
from harness.report.figures import Figures
from harness.report.rows import Row
from harness.report.stats import RESAMPLES, Bootstrap, mean_of, seed_pooled, widening
from harness.scoring import Metrics
from harness.store import Store
from harness.store.queries import Draws


def _row(per_seed: list[np.ndarray], seeds: list[int], trained: bool = True,
         merge: str = "none") -> Row:
    row = Row("g", "enc", "lora" if trained else "none", "a" if trained else None, merge,
              trained=trained, seeds=seeds)
    row.values[("a", "m")] = [float(np.nanmean(v)) for v in per_seed]
    row.samples[("a", "m")] = list(per_seed)
    return row


def _figures(rows: list[Row]) -> Figures:
    return Figures(rows, ["a"], ["m"], seed=3, primary="m")


def test_two_seeds_of_constant_rows_give_the_t_interval_over_the_seeds() -> None:
    c1, c2, n = 0.2, 0.6, 50
    row = _row([np.full(n, c1), np.full(n, c2)], [0, 1])
    est = _figures([row]).score(row, "a", "m")
    mean = (c1 + c2) / 2
    assert est.value == pytest.approx(mean)
    assert est.draws is not None and len(est.draws) == RESAMPLES
    # every draw resamples the two seeds: both c1 (1/4), one of each (1/2), both c2 (1/4);
    # the resampled mean's deviation is widened by t(1) = 12.71
    found, counts = np.unique(np.round(est.draws, 9), return_counts=True)
    t1 = widening(2)
    assert t1 == pytest.approx(12.706205)
    assert found.tolist() == pytest.approx([mean - t1 * 0.2, mean, mean + t1 * 0.2])
    assert counts / RESAMPLES == pytest.approx([0.25, 0.5, 0.25], abs=0.05)
    same = _row([np.full(n, c1), np.full(n, c1)], [0, 1])
    lo, hi = _figures([same]).score(same, "a", "m").interval() or (0.0, 0.0)
    wide = est.interval()
    assert wide is not None and hi - lo < 1e-12 < wide[1] - wide[0]
    # the t-interval over two runs: mean ± t(1) · s / √2, s their standard deviation
    s = float(np.std([c1, c2], ddof=1))
    assert wide == pytest.approx((mean - t1 * s / np.sqrt(2), mean + t1 * s / np.sqrt(2)))


def test_one_seed_draws_are_the_one_level_bootstrap() -> None:
    values = np.random.default_rng(0).normal(0.1, 0.3, 80)
    values[3] = np.nan
    row = _row([values], [7])
    est = _figures([row]).score(row, "a", "m")
    old = mean_of([Bootstrap(3).estimate("a", values)])
    assert est.value == pytest.approx(old.value)
    assert est.draws is not None and old.draws is not None
    assert np.array_equal(est.draws, old.draws)


def test_rows_with_the_same_seeds_take_the_same_seeds_in_every_draw() -> None:
    boot = Bootstrap(3)
    picks = boot.seed_picks((0, 1, 2), 3)
    assert picks.shape == (RESAMPLES, 3) and set(np.unique(picks)) == {0, 1, 2}
    assert np.array_equal(picks, Bootstrap(3).seed_picks((0, 1, 2), 3))
    assert not np.array_equal(picks, boot.seed_picks((5, 6, 7), 3))
    assert not boot.seed_picks((4,), 1).any()
    # a merge of the same runs, shifted by a constant: the paired difference has no spread
    rng = np.random.default_rng(1)
    per_seed = [rng.normal(m, 0.2, 60) for m in (0.1, 0.5, 0.3)]
    a, b = _row(per_seed, [0, 1, 2]), _row([v + 0.05 for v in per_seed], [0, 1, 2], merge="x")
    fig = _figures([a, b])
    diff = fig.score(b, "a", "m") - fig.score(a, "a", "m")
    assert diff.draws is not None and np.ptp(diff.draws) < 1e-9
    assert diff.value == pytest.approx(0.05)


def test_recomputed_draws_are_used_as_they_are() -> None:
    draws = np.linspace(0.0, 1.0, RESAMPLES).view(Draws)
    row = _row([draws], [0])
    row.values[("a", "m")] = [0.4]  # the plain metric on the full sample, not the draws' mean
    est = _figures([row]).score(row, "a", "m")
    assert est.value == 0.4 and est.draws is not None
    assert np.array_equal(est.draws, np.asarray(draws))
    short = _row([np.ones(10).view(Draws)], [0])  # drawn on other resamples: not comparable
    assert _figures([short]).score(short, "a", "m").draws is None


def test_seeds_of_names_figures_on_one_training_seed() -> None:
    base = _row([np.ones(5)], [], trained=False)
    one, three = _row([np.ones(5)], [0]), _row([np.ones(5)] * 3, [0, 1, 2])
    assert Figures.seeds_of([base]) == 0
    assert Figures.seeds_of([base, three]) == 3
    assert Figures.seeds_of([one, three]) == 1


def test_seed_pooled_adds_between_seed_spread() -> None:
    assert seed_pooled([(0.5, 0.4, 0.6)]) == pytest.approx((0.5, 0.4, 0.6))
    value, lo, hi = seed_pooled([(0.4, 0.3, 0.5), (0.6, 0.5, 0.7)])
    assert value == pytest.approx(0.5) and hi - lo > 0.2


def test_draws_and_rows_roundtrip_with_their_kind(tmp_path) -> None:
    store = Store(tmp_path / "S")
    try:
        per, draws = np.array([1.0, np.nan, 0.0]), np.arange(4.0).view(Draws)
        store.put_scores("c", "v", "parity", ("smoke", 0, 1),
                         [("m1", "probe", 0.5, "", True), ("m2", "nmi", 0.4, "", True)],
                         {"m1": per, "m2": draws})
        got = store.samples()
        assert not isinstance(got[("c", "m1")], Draws)
        assert np.array_equal(got[("c", "m1")], per, equal_nan=True)
        assert isinstance(got[("c", "m2")], Draws)
        assert np.array_equal(got[("c", "m2")], draws)
        assert store.db.execute("SELECT kind FROM samples ORDER BY metric_key").fetchall() == \
            [("rows",), ("draws",)]
        store.db.execute("UPDATE samples SET kind = NULL")  # a schema-2 blob: per-row values
        assert not any(isinstance(v, Draws) for v in store.samples().values())
    finally:
        store.close()


def _blobs(n: int = 60, shift: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 6))
    X[:, 0] += shift * y  # two directions apart (cosine geometry)
    X[:, 1] += shift * (1 - y)
    return X.astype(np.float32), y


def test_scoring_stores_draws_on_the_shared_resamples() -> None:
    X, y = _blobs()
    metrics = Metrics([KMeansARI(fits=3), Silhouette()])
    rows, samples = metrics.score(X, y, "eval-key", set(), task="parity", seed=5)
    (ari_key, *_), (sil_key, *_) = rows
    draws = samples[ari_key]
    assert isinstance(draws, Draws) and draws.shape == (RESAMPLES,)
    again = KMeansARI(fits=3).resampled(X, y, np.random.default_rng(
        metric_seed("eval-key", ari_key)), Bootstrap(5).counts("parity", len(y)))
    assert np.array_equal(np.asarray(draws), again)
    assert not isinstance(samples[sil_key], Draws) and samples[sil_key].shape == (len(y),)
    _, plain = Metrics([KMeansARI(fits=3)]).score(X, y, "eval-key", set())
    assert plain == {}  # no task and seed given: no draws (as before)


def test_bootstrap_counts_are_the_indices_multiplicities() -> None:
    boot = Bootstrap(2, resamples=20)
    idx, counts = boot.indices("t", 9), boot.counts("t", 9)
    assert counts.shape == (20, 9) and (counts.sum(axis=1) == 9).all()
    assert np.array_equal(counts[4], np.bincount(idx[4], minlength=9))


def test_silhouette_rows_average_to_the_silhouette() -> None:
    for k, n in ((2, 40), (3, 31)):
        rng = np.random.default_rng(k)
        y = rng.integers(0, k, n)
        X = rng.normal(size=(n, 5)) + 0.8 * y[:, None]
        Z = X / np.linalg.norm(X, axis=1, keepdims=True)
        rows = silhouette_rows(Z, y)
        assert rows.mean() == pytest.approx(silhouette_score(X, y, metric="cosine"), abs=1e-12)
        # the linearisation: close to the jackknife's pseudo-values n S - (n - 1) S(-i)
        left_out = np.array([silhouette_score(np.delete(X, i, 0), np.delete(y, i),
                                              metric="cosine") for i in range(n)])
        pseudo = n * rows.mean() - (n - 1) * left_out
        assert np.corrcoef(pseudo, rows)[0, 1] > 0.99
    y = np.array([0] * 6 + [1] * 6 + [2])  # a lone row scores 0, as in sklearn
    X = np.random.default_rng(9).normal(size=(13, 4))
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert silhouette_rows(Z, y).mean() == pytest.approx(silhouette_score(X, y, metric="cosine"))


def test_agreement_tables_match_sklearn_on_weighted_rows() -> None:
    rng = np.random.default_rng(0)
    y, labels = rng.integers(0, 3, 40) * 7, rng.integers(0, 2, (2, 40))
    counts = rng.integers(0, 3, (3, 40)).astype(float)
    tables = contingency(y, labels, counts)
    for b in range(3):
        yy = np.repeat(y, counts[b].astype(int))
        for f in range(2):
            ll = np.repeat(labels[f], counts[b].astype(int))
            assert nmi(tables)[b, f] == pytest.approx(normalized_mutual_info_score(yy, ll))
            assert ari(tables)[b, f] == pytest.approx(adjusted_rand_score(yy, ll))


def test_kmeans_scores_average_their_fits() -> None:
    X, y = _blobs(shift=6.0)
    for cls in (KMeansNMI, KMeansARI):
        assert cls(fits=4).score(X, y, np.random.default_rng(0)) > 0.8
        with pytest.raises(ValueError, match="fits"):
            cls(fits=0)
    counts = Bootstrap(0, resamples=50).counts("t", len(y))
    draws = KMeansARI(fits=4).resampled(X, y, np.random.default_rng(0), counts)
    assert draws.shape == (50,) and np.isfinite(draws).all()
