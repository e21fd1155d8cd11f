"""Merging several tasks' fine-tunes (``over=tasks``): the methods on hand-worked examples with
conflicting signs, order invariance, the held-out choice of λ, the plan, and retention."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from harness.api import HarnessError
from harness.plugins.interpolation import Slerp, spherical_mean
from harness.plugins.soups import Soup
from harness.plugins.task_vectors import Dare, DareTies, ModelStock, TaskArithmetic, Ties
from harness.report.figures import Figures
from harness.report.merging import Ranking, method
from harness.report.ranking_page import section
from harness.report.rows import Row


def vec(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-6) -> bool:
    return torch.allclose(a.float(), b.float(), atol=tol)


# three task vectors that disagree in sign on entries 0 and 1
BASE = {"w": vec(1.0, 1.0, 1.0, 1.0)}
D = [vec(3.0, -1.0, 0.5, 0.0), vec(-2.0, -2.5, 1.0, 0.0), vec(-0.5, 2.0, 0.0, 4.0)]
CKS = [{"w": BASE["w"] + d} for d in D]


def test_task_arithmetic_sums_with_lambda() -> None:
    out = TaskArithmetic(scale=0.5).merge(BASE, CKS)
    assert close(out["w"], BASE["w"] + 0.5 * (D[0] + D[1] + D[2]))  # 1 + 0.5·(0.5, -1.5, 1.5, 4)


def test_ties_trims_elects_and_takes_the_disjoint_mean() -> None:
    # density 1: signs of the sums (+0.5, -1.5, +1.5, +4) -> (+, -, +, +); agreeing entries:
    # entry 0: 3 alone; entry 1: -1, -2.5 -> -1.75; entry 2: 0.5, 1 -> 0.75; entry 3: 4
    out = Ties(density=1.0, scale=1.0).merge(BASE, CKS)
    assert close(out["w"], BASE["w"] + vec(3.0, -1.75, 0.75, 4.0))
    # density 0.25 keeps each vector's largest entry: (3,0,0,0), (0,-2.5,0,0), (0,0,0,4)
    out = Ties(density=0.25, scale=2.0).merge(BASE, CKS)
    assert close(out["w"], BASE["w"] + 2 * vec(3.0, -2.5, 0.0, 4.0))


def test_dare_ta_and_dare_ties_without_drops_are_ta_and_ties() -> None:
    ta = TaskArithmetic(scale=0.7).merge(BASE, CKS)
    assert close(Dare(p=0.0, scale=0.7).merge(BASE, CKS)["w"], ta["w"])  # sums, not means
    ties = Ties(density=1.0, scale=1.5).merge(BASE, CKS)
    assert close(DareTies(p=0.0, scale=1.5).merge(BASE, CKS)["w"], ties["w"])


def test_dare_rescales_the_kept_entries_and_sums() -> None:
    g = torch.Generator().manual_seed(3)
    base = {"w": torch.zeros(300, 300)}
    cks = [{"w": torch.randn(300, 300, generator=g)} for _ in range(2)]
    out = Dare(p=0.8, scale=1.0).merge(base, cks)["w"]
    assert float(out.mean()) == pytest.approx(float((cks[0]["w"] + cks[1]["w"]).mean()), abs=0.02)
    one = Dare(p=0.8, scale=1.0).merge(base, cks[:1])["w"]
    assert (one != 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert close(one[one != 0], cks[0]["w"][one != 0] * 5, 1e-4)
    assert not torch.equal(one, Dare(p=0.8, scale=1.0, seed=1).merge(base, cks[:1])["w"])


def test_k_way_slerp_is_the_spherical_mean() -> None:
    e = torch.eye(3, dtype=torch.float64)
    out, linear, angle = spherical_mean([e[0], e[1], e[2]])
    assert not linear and angle == pytest.approx(math.pi / 2)
    assert torch.allclose(out, torch.ones(3, dtype=torch.float64) / math.sqrt(3))
    # two inputs of equal norm: SLERP at t = 0.5, i.e. the normalised midpoint, norm kept
    a, b = vec(2.0, 0.0).double(), vec(0.0, 2.0).double()
    out, _, _ = spherical_mean([a, b])
    assert torch.allclose(out, torch.tensor([math.sqrt(2), math.sqrt(2)], dtype=torch.float64))
    # unequal angles: the Karcher mean is not the normalised arithmetic mean
    c = torch.tensor([math.cos(2.5), math.sin(2.5), 0.0], dtype=torch.float64)
    out, _, _ = spherical_mean([e[0], e[1], c])
    tangent = sum(math.acos(float(torch.dot(out, u))) / math.sin(math.acos(float(
        torch.dot(out, u)))) * (u - torch.dot(out, u) * out) for u in (e[0], e[1], c))
    assert float(torch.linalg.vector_norm(tangent)) < 1e-8  # the fixed point: log maps sum to 0
    parallel, linear, _ = spherical_mean([vec(1.0, 0.0).double(), vec(1.0, 1e-4).double()])
    assert linear  # nearly parallel: the plain mean
    merged = Slerp(over="tasks").merge(BASE, CKS)
    assert merged.stats["linear fallback"] == 0.0 and merged.stats["mean angle (deg)"] > 60


def test_spherical_mean_solves_the_karcher_condition_in_full_space() -> None:
    # the iteration runs on coefficients in the inputs' span; check its answer over the tensor
    g = torch.Generator().manual_seed(3)
    common = torch.randn(2000, generator=g, dtype=torch.float64)
    for k, spread in ((2, 0.5), (3, 1.0), (4, 0.2), (5, 3.0)):
        xs = [common + spread * torch.randn(2000, generator=g, dtype=torch.float64)
              for _ in range(k)]
        out, linear, _ = spherical_mean(xs)
        norms = [float(torch.linalg.vector_norm(x)) for x in xs]
        assert not linear
        assert float(torch.linalg.vector_norm(out)) == pytest.approx(sum(norms) / k)
        x = out / torch.linalg.vector_norm(out)
        tangent = torch.zeros_like(x)
        for v, n in zip(xs, norms, strict=True):
            cos = float(torch.clamp(torch.dot(x, v / n), -1.0, 1.0))
            theta = math.acos(cos)
            tangent += theta / math.sin(theta) * (v / n - cos * x)
        assert float(torch.linalg.vector_norm(tangent)) < 1e-9, (k, spread)


def test_spherical_mean_of_nearly_dependent_inputs_is_finite() -> None:
    # three directions at 120° in a plane sum to zero: no unique mean, the plain mean; perturbed,
    # and two antipodal pairs: the iteration over the tensor, never NaN
    g = torch.Generator().manual_seed(5)
    for trial in range(50):
        basis, _ = torch.linalg.qr(torch.randn(200, 4, generator=g, dtype=torch.float64))
        a, b = basis[:, 0], basis[:, 1]
        scale = float(torch.rand(1, generator=g)) * 10 + 0.1
        plane = [scale * (math.cos(t) * a + math.sin(t) * b)
                 for t in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)]
        out, linear, _ = spherical_mean(plane)
        assert linear and torch.isfinite(out).all(), trial
        nudged = [*plane[:2], plane[2] + 1e-10 * basis[:, 2]]
        out, _, _ = spherical_mean(nudged)
        assert torch.isfinite(out).all(), trial
        c = basis[:, 3]
        out, _, _ = spherical_mean([a, -a, c, -c])
        assert torch.isfinite(out).all(), trial


def test_spherical_mean_in_the_span_matches_the_iteration_over_the_tensor() -> None:
    from harness.plugins.interpolation import _mean_in_full

    g = torch.Generator().manual_seed(7)
    for k in (2, 3, 6):
        xs = [torch.randn(500, generator=g, dtype=torch.float64) + 2.0 for _ in range(k)]
        out, linear, _ = spherical_mean(xs)
        units = [x / torch.linalg.vector_norm(x) for x in xs]
        start = sum(units[1:], units[0].clone())
        full = _mean_in_full(units, start / torch.linalg.vector_norm(start), 50)
        assert not linear
        assert torch.allclose(out / torch.linalg.vector_norm(out), full, atol=1e-12, rtol=0)


ORDER_FREE = [Soup(over="tasks"), TaskArithmetic(over="tasks", scale=0.6),
              Ties(over="tasks", density=0.5, scale=1.0), Dare(over="tasks", p=0.5, scale=0.5),
              DareTies(over="tasks", p=0.5, scale=1.0), Slerp(over="tasks"),
              ModelStock(over="tasks")]


@pytest.mark.parametrize("merge", ORDER_FREE, ids=lambda m: m.name)
def test_results_do_not_depend_on_the_order_of_ingredients(merge) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(40, 30, generator=g), "b": torch.randn(30, generator=g)}
    cks = [{k: v + 0.3 * torch.randn(v.shape, generator=g) for k, v in base.items()}
           for _ in range(3)]

    def run(order: tuple[int, ...]) -> dict[str, torch.Tensor]:
        out = merge.merge(base, [cks[i] for i in order])
        return out.tensors if hasattr(out, "tensors") else out

    first = run((0, 1, 2))
    exact = merge.name in ("task-arithmetic", "ties", "dare", "dare-ties")
    for order in itertools.permutations(range(3)):
        again = run(order)
        for k in base:
            assert torch.equal(again[k], first[k]) if exact else close(again[k], first[k], 1e-5)


def test_lambda_is_chosen_on_the_held_out_score() -> None:
    target = BASE["w"] + 0.5 * (D[0] + D[1] + D[2])

    def score(t: dict[str, torch.Tensor]) -> float:
        return -float((t["w"] - target).norm())

    out = TaskArithmetic().merge(BASE, CKS, score=score)
    assert out.stats["chosen scale"] == 0.5 and out.stats["held-out score"] == pytest.approx(0)
    assert close(out.tensors["w"], target)
    assert out.stats["chosen effective coefficient"] == 0.5  # a sum's coefficient is λ
    ties = Ties().merge(BASE, CKS, score=score)
    assert set(ties.stats) == {"chosen scale", "chosen density", "chosen effective coefficient",
                               "held-out score"}
    assert TaskArithmetic().scored_by() == "silhouette" and TaskArithmetic(scale=1).scored_by() \
        is None
    with pytest.raises(ValueError, match="scorer"):
        TaskArithmetic().merge(BASE, CKS)


def test_over_tasks_parameters() -> None:
    assert Soup(over="tasks", tasks="b+a").tasks == "a+b"  # a set of tasks
    assert Soup(over="tasks").ingredients() == ("tasks", 1)
    with pytest.raises(ValueError, match="over=tasks"):
        Soup(tasks="a+b")
    with pytest.raises(ValueError, match="two tasks"):
        Soup(over="tasks", tasks="a")
    with pytest.raises(ValueError, match="do not apply"):
        Slerp(over="tasks", t=0.3)


def test_added_parameters_keep_the_keys() -> None:
    from harness import keys

    assert "tasks" not in keys.identity(Soup())["params"]  # stores made before it stay valid
    assert keys.identity(Soup(over="tasks", tasks="a+b"))["params"]["tasks"] == "a+b"


# ------------------------------------------------------------------------------------ the plan


def test_plan_merges_one_run_per_task_shared_with_the_fine_tunes() -> None:
    from harness.plan import plan_request
    from harness.registry import load_registry
    from harness.selection import Request

    reg = load_registry()
    req = Request(encoders=["scratch"], adapters=["full"], tasks=["parity", "primality", "square"],
                  train_tasks=["parity", "primality"], metrics=["silhouette"],
                  merges=["ties:over=tasks", "soup:over=tasks,tasks=square+parity"],
                  profile="smoke", seeds=2)
    plan = plan_request(reg, req)
    cross = [v for v in plan.variants if v.run_tasks]
    assert len(cross) == 4  # two merges x two seeds
    singles = {(v.train_task.name, v.seed): v.train_key for v in plan.variants
               if v.train_task is not None and v.merge is None}
    for v in cross:
        assert all(singles[(t.name, v.seed)] == k for t, (_, k) in zip(v.run_tasks, v.runs,
                                                                         strict=True))
    soup = next(v for v in cross if v.merge.name == "soup")
    assert soup.merged_names == ["parity", "square"]  # square trained for it, unmerged only
    assert not any(v.train_task and v.train_task.name == "square" and v.merge for v in
                   plan.variants)
    with pytest.raises(HarnessError, match="not an eval task"):
        plan_request(reg, Request(encoders=["scratch"], adapters=["full"], tasks=["parity"],
                                  metrics=["silhouette"], profile="smoke",
                                  merges=["soup:over=tasks,tasks=parity+fibonacci"]))
    one = plan_request(reg, Request(encoders=["scratch"], adapters=["full"], tasks=["parity"],
                                    metrics=["silhouette"], profile="smoke",
                                    merges=["soup:over=tasks"]))
    assert one.skipped and "two train tasks" in one.skipped[0][1]


def test_all_with_a_named_cross_task_merge_adds_the_comparators() -> None:
    from harness.params import label
    from harness.registry import load_registry
    from harness.selection import Request, select

    reg = load_registry()
    sel = select(reg, Request(all=True, merges=["model-stock:over=tasks"]))
    names = sorted(m.name for m in sel.merges if m.ingredients()[0] == "tasks")
    assert names == ["breadcrumbs", "consensus-ties", "dare-ties", "iso-c", "model-stock",
                     "slerp", "slerp", "soup", "task-arithmetic", "ties", "tsv"]
    assert "slerp:over=tasks,rescale=silhouette" in {label(m) for m in sel.merges}
    single = select(reg, Request(all=True, merges=["soup"]))  # single-task merges only
    assert not any(m.ingredients()[0] == "tasks" for m in single.merges)


def test_the_default_grid_merges_the_train_tasks_on_every_encoder() -> None:
    from harness.plan import plan_request
    from harness.registry import load_registry
    from harness.selection import Request

    reg = load_registry()
    plan = plan_request(reg, Request(all=True))
    cross = [v for v in plan.variants if v.run_tasks]
    train = sorted(t.name for t in reg.components["tasks"].values() if t.trains_by_default)
    assert all(v.merged_names == train for v in cross)
    pairs = {(v.encoder.name, v.adapter.name) for v in plan.variants if v.adapter is not None}
    for pair in pairs:  # every encoder + adapter the grid trains, by every comparator
        methods = sorted(v.merge.name for v in cross
                         if (v.encoder.name, v.adapter.name) == pair)
        # one cross-task merge per training seed (quick: 2) and per DARE mask draw; SLERP
        # twice: as merged and rescaled
        assert methods == sorted((["dare-ties"] * plan.profile.replicates + [
            "breadcrumbs", "consensus-ties", "iso-c", "slerp", "slerp", "soup",
            "task-arithmetic", "ties", "tsv"]) * plan.profile.seeds)
    assert {e for e, _ in pairs} == {"minilm", "scratch", "smollm2"}


def test_validation_samples_are_disjoint_from_eval() -> None:
    from harness.api import PROFILES
    from harness.leaks import Leaks
    from harness.registry import load_registry
    from harness.samples import eval_sample, valid_sample

    reg = load_registry()
    for name in ("parity", "primality", "progression"):
        task = reg.get("tasks", name)()
        for profile in ("smoke", "quick"):
            held = Leaks(eval_sample(task, PROFILES[profile], 0))
            assert not [s for s in valid_sample(task, PROFILES[profile], 0) if s in held]


# ----------------------------------------------------------------------------------- retention


def _row(encoder: str, task: str | None, merge: str, scores: dict[str, float],
         tasks: list[str] | None = None, n: int = 200) -> Row:
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.05, n)
    roles = {"tasks": tasks} if tasks else {}
    row = Row("g", encoder, "full" if task or tasks else "none",
              "+".join(tasks) if tasks else task, merge, trained=bool(task or tasks),
              merged=merge != "none", roles=roles, seeds=[0] if task or tasks else [])
    for t, v in scores.items():
        values = v + noise
        row.values[(t, "silhouette")] = [float(values.mean())]
        row.samples[(t, "silhouette")] = [values]
    return row


def test_retention_from_synthetic_rows() -> None:
    base = _row("enc", None, "none", {"a": 0.1, "b": 0.2, "c": 0.0})
    tune_a = _row("enc", "a", "none", {"a": 0.5, "b": 0.2, "c": 0.0})
    tune_b = _row("enc", "b", "none", {"a": 0.1, "b": 0.2, "c": 0.0})  # gained nothing on b
    ties = _row("enc", None, "ties:over=tasks", {"a": 0.4, "b": 0.25, "c": -0.1}, ["a", "b"])
    soup = _row("enc", None, "soup:over=tasks", {"a": 0.2, "b": 0.2, "c": 0.0}, ["a", "b"])
    fig = Figures([base, tune_a, tune_b, ties, soup], ["a", "b", "c"], ["silhouette"], 0,
                  "silhouette")
    found = {method(m.row): m for m in Ranking(fig).found}
    kept, why, versus = found["ties"].per_task["a"]
    assert kept is not None and kept.value == pytest.approx((0.4 - 0.1) / (0.5 - 0.1))
    assert versus is not None and versus.value == pytest.approx(0.4 - 0.5)
    assert found["ties"].per_task["b"][0] is None and "not above zero" in \
        found["ties"].per_task["b"][1]
    assert found["ties"].retention.value == pytest.approx(0.75)  # over the defined tasks
    assert found["ties"].off.value == pytest.approx(-0.1)  # on c, the task not merged
    assert found["soup"].retention.value == pytest.approx(0.25)
    table = Ranking(fig).table()
    assert [r.method for r in table] == ["ties", "soup"] and table[0].mark == "★"
    assert table[1].mark == ""  # paired: 0.5 apart on the same rows is resolved
    # mean vs fine-tune over every merged task: ties (0.4-0.5 on a, 0.25-0.2 on b)
    assert table[0].versus.value == pytest.approx(((0.4 - 0.5) + (0.25 - 0.2)) / 2)
    assert table[1].versus.value == pytest.approx(((0.2 - 0.5) + (0.2 - 0.2)) / 2)
    text = "\n".join(section(fig, {}))
    assert "Merge-method ranking" in text and "ties ★" in text


def test_rank_by_another_metric() -> None:
    """``--rank-by``: the ranking's figures on another of the run's metrics (here the order
    flips: ties keeps more silhouette, soup more of the second metric); a metric the run does
    not have is one line."""
    from harness.errors import HarnessError
    from harness.report.leaderboard import check_rank_by

    base = _row("enc", None, "none", {"a": 0.1, "b": 0.1})
    tune_a = _row("enc", "a", "none", {"a": 0.5, "b": 0.1})
    tune_b = _row("enc", "b", "none", {"a": 0.1, "b": 0.5})
    ties = _row("enc", None, "ties:over=tasks", {"a": 0.4, "b": 0.4}, ["a", "b"])
    soup = _row("enc", None, "soup:over=tasks", {"a": 0.2, "b": 0.2}, ["a", "b"])
    for row, second in ((base, 0.5), (tune_a, 0.9), (tune_b, 0.9), (ties, 0.6), (soup, 0.8)):
        for t in ("a", "b"):
            values = second + np.random.default_rng(3).normal(0, 0.05, 200)
            row.values[(t, "knn")] = [float(values.mean())]
            row.samples[(t, "knn")] = [values]
    fig = Figures([base, tune_a, tune_b, ties, soup], ["a", "b"], ["silhouette", "knn"], 0,
                  "silhouette")
    assert [r.method for r in Ranking(fig).table()] == ["ties", "soup"]
    by_knn = Ranking(fig, "knn")
    assert by_knn.metric == "knn" and [r.method for r in by_knn.table()] == ["soup", "ties"]
    assert "on `knn`" in "\n".join(section(fig, {}, by_knn))
    check_rank_by("knn", ["silhouette", "knn"])
    with pytest.raises(HarnessError, match=r"^--rank-by 'probe': not a metric of this run; "
                       r"choose one of silhouette, knn \(or add it with --metric\)$"):
        check_rank_by("probe", ["silhouette", "knn"])


def test_a_random_merge_is_drawn_several_times_and_shown_as_one_row() -> None:
    from harness.api import REPLICATES
    from harness.plan import plan_request
    from harness.registry import load_registry
    from harness.report.rows import merge_label
    from harness.selection import Request

    reg = load_registry()
    plan = plan_request(reg, Request(encoders=["scratch"], adapters=["full"],
                                     tasks=["parity", "primality"], metrics=["silhouette"],
                                     merges=["dare-ties:over=tasks"], profile="smoke"))
    dare = [v for v in plan.variants if v.merge is not None]
    assert sorted(v.merge.seed for v in dare) == list(range(REPLICATES))
    labels = {merge_label(v.record(plan.profile)) for v in dare}
    assert labels == {"dare-ties:over=tasks"}
    fixed = plan_request(reg, Request(encoders=["scratch"], adapters=["full"],
                                      tasks=["parity", "primality"], metrics=["silhouette"],
                                      merges=["dare-ties:over=tasks,seed=5"], profile="smoke"))
    assert [v.merge.seed for v in fixed.variants if v.merge is not None] == [5]


def test_the_smoke_run_ranks_cross_task_merges(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue #33's run: the new baselines across tasks on the smoke profile, ranked with their
    rank intervals, Holm-corrected p-values and effective coefficients; a rescaled SLERP. Each
    training run's checkpoints load (or train) once, though fine-tunes of other tasks come
    between the merges that use them (``Weights.keep``)."""
    import collections
    import contextlib
    import io

    from harness.cli import main
    from harness.store.artifacts import Artifacts

    loads: collections.Counter[str] = collections.Counter()
    load = Artifacts.load_checkpoints

    def counted(self, key):  # type: ignore[no-untyped-def]
        found = load(self, key)
        loads[key] += 1
        return found

    monkeypatch.setattr(Artifacts, "load_checkpoints", counted)

    args = ["run", "--encoder", "scratch", "--adapter", "full", "--task", "parity", "--task",
            "divisible-by-5", "--task", "monotonic", "--merge", "breadcrumbs:over=tasks",
            "--merge", "della:over=tasks", "--merge", "tsv:over=tasks", "--merge",
            "slerp:over=tasks,rescale=silhouette", "--profile", "smoke", "--metric",
            "silhouette", "--metric", "knn-accuracy", "--store", str(tmp_path / "S"),
            "--out", str(tmp_path / "O.md")]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(args) == 0
    assert "0 failed" in out.getvalue()
    assert loads and max(loads.values()) == 1, loads  # each run looked up once, then cached
    page = (tmp_path / "O.md").read_text()
    ranking = page[page.index("## Merge-method ranking"):page.index("## The paper's claims")]
    for name in ("| breadcrumbs", "| della", "| tsv", "| slerp:rescale=silhouette",
                 "parity:", "divisible-by-5:", "monotonic:", "chosen effective coefficient",
                 "rescale factor", "rank (P first)", "p vs ★", "coefficient (outside)",
                 "p (Holm)", "coefficient per task (outside)", "mean retention", "oracle gap"):
        assert name in ranking, name
    table = ranking.split("| method")[1].split("\n\n")[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert len(rows) == 4
    for line in rows:  # every method: a rank interval with its share first, its oracle gap
        cells = [c.strip() for c in line.split("|")[1:-1]]  # (each chooses λ), a coefficient
        assert cells[2] == "n/a" or "(" in cells[2], line
        assert cells[4].startswith("+") and float(cells[4]) >= 0, line
        assert cells[5] != "n/a", line
    assert "scratch + full@divisible-by-5+monotonic+parity" not in page.split(
        "## Headline")[1].split("## ")[0]  # not in the single-task table


def test_checkpoints_kept_for_later_variants_fit_the_cache(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``Weights.keep``: the current variant's runs always stay; later ones while they fit
    ``CACHE_BYTES``, soonest first; a run no variant uses again is dropped."""
    from types import SimpleNamespace

    from harness import weights
    from harness.api import Checkpoint

    cache = weights.Weights(None, None)  # type: ignore[arg-type]
    one = [Checkpoint(0, 0, {"w": torch.zeros(256)})]  # 1 KiB each
    cache._checkpoints = {k: one for k in "abcde"}
    monkeypatch.setattr(weights, "CACHE_BYTES", 2048)
    cache.keep(SimpleNamespace(runs=[(0, "a")]), ["c", "a", "d", "e"])  # type: ignore[arg-type]
    assert sorted(cache._checkpoints) == ["a", "c", "d"]  # b unused; e over the 2 KiB
