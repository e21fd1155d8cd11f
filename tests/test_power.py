"""The power of every verdict (issue #32): each claim's minimum detectable difference, the
merge-method ranking's adjacent pairs, claim 2's confound and the chance level of accuracies."""

from __future__ import annotations

import numpy as np
import pytest

from harness.report import chance, leaderboard, paper, power, ranks, tables, tradeoff
from harness.report.figures import Figures, judged
from harness.report.merging import Ranked
from harness.report.ranking_page import adjacent, section
from harness.report.rows import Row
from harness.report.stats import Estimate, detectable, detectable_se, interval_se
from harness.store.records import EvalSampleRecord


def _draws(sd: float, n: int = 4000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, n)


def test_mde_is_z_quantiles_times_the_bootstrap_se() -> None:
    e = Estimate(0.0, _draws(0.1))
    found = detectable(e)
    assert found is not None and found.seeds == 0
    assert found.se == pytest.approx(0.1, rel=0.05)
    assert found.effect == pytest.approx((1.959964 + 0.841621) * found.se)
    assert "(1.96 + 0.84)" in found.how()
    assert detectable(Estimate(0.3)) is None and detectable(None) is None  # no draws
    assert interval_se(-0.196, 0.196) == pytest.approx(0.1, rel=1e-4)  # (hi − lo) / 3.92


def test_over_seeds_the_mde_comes_from_the_t_corrected_interval() -> None:
    two = detectable_se(0.1, 2)
    assert two is not None and two.effect == pytest.approx(2.801585 * 0.1) and two.seeds == 2
    assert "interval over 2 training seeds" in two.how()
    assert "a t's with 2 degree(s) of freedom over 3 training seeds" in power.method(3)
    assert "a t's" not in power.method(1)
    # from an estimate's interval, not its draws' sd: the t-widening is in the interval
    draws = np.concatenate([np.full(500, -1.0), np.full(500, 1.0)])
    e = Estimate(0.0, draws)
    lo, hi = e.interval() or (0.0, 0.0)
    assert detectable(e, 2).effect == pytest.approx(2.801585 * (hi - lo) / 3.919928)
    assert detectable(e, 1).effect == pytest.approx(2.801585 * float(np.std(draws, ddof=1)))


def test_an_inconclusive_verdict_says_what_it_could_have_found() -> None:
    small, large = detectable_se(0.01), detectable_se(0.1)
    assert judged([1, 0, 0], [small, small, large]) == \
        f"inconclusive: no effect larger than {large.effect:.3f} (80% power)"
    assert judged([1, 0], [large, small]) == \
        f"inconclusive: no effect larger than {small.effect:.3f} (80% power)"  # undecided only
    assert judged([1, 1], [small, large]) == "supported"
    assert judged([1, -1], [small, large]) == "not supported"
    assert judged([0], [None]) == "inconclusive"  # nothing to say it with


def _row(group: str, encoder: str, family: str, task: str | None, merge: str = "none",
         shift: float = 0.0, metric: str = "silhouette", n: int = 120, seed: int = 1,
         noise: float = 0.3, **roles: object) -> Row:
    rng = np.random.default_rng(seed)
    row = Row(group, encoder, "lora" if task else "none", task, merge, family=family,
              trained=task is not None, merged=merge != "none",
              roles={"parameter_efficient": True, **roles}, seeds=[0] if task else [])
    for t in ("a", "b", "c"):
        values = rng.normal(0.1, noise, n) + (shift if t == task else 0.0)
        if metric.endswith("accuracy"):
            values = (values > 0.1).astype(float)
        row.values[(t, metric)] = [float(values.mean())]
        row.samples[(t, metric)] = [values]
    return row


def _sample(task: str, labels: list[int]) -> EvalSampleRecord:
    return EvalSampleRecord("k" + task, task, "quick", 0, 1, {"compositional": True},
                            [(i,) for i in range(len(labels))], labels)


def test_claim1_states_its_detectable_effect_from_the_eval_rows() -> None:
    for n, above in ((40, True), (20000, False)):
        rows = [_row("LLM base", "llm", "llm", None, metric="probe-accuracy", n=n, seed=1),
                _row("non-LLM base", "enc", "non-llm", None, metric="probe-accuracy", n=n,
                     seed=2)]
        fig = Figures(rows, ["a", "b", "c"], ["probe-accuracy"], 0, "probe-accuracy")
        fig.chance = chance.levels({"a": _sample("a", [0, 1] * (n // 2)),
                                    "b": _sample("b", [0, 0, 1, 2] * (n // 4))})
        title, verdict, lines = paper.claim1(fig, {"a", "b"})
        text = "\n".join(lines)
        assert "detectable: " in lines[0]
        assert f"{n} eval rows per compositional task" in text
        assert ("above 0.05: the compositional tasks need more eval rows" in text) is above
        assert "a 0.500 (1/2)" in text and "b 0.500 (majority of 3 classes)" in text
        if verdict.startswith("inconclusive"):
            assert "no effect larger than" in verdict and "(80% power)" in verdict


def _claim2_rows(llms: list[str], others: list[str]) -> list[Row]:
    rows = []
    for i, enc in enumerate(llms):
        rows += [_row("LLM base", enc, "llm", None, seed=i),
                 _row("LLM + LoRA", enc, "llm", "a", shift=0.5, seed=i)]
    for i, enc in enumerate(others):
        rows += [_row("non-LLM base", enc, "non-llm", None, seed=10 + i),
                 _row("non-LLM (LoRA)", enc, "non-llm", "a", shift=0.4, seed=10 + i)]
    return rows


def test_claim2_names_its_confound_and_its_power() -> None:
    fig = Figures(_claim2_rows(["smollm2"], ["minilm"]), ["a", "b", "c"], ["silhouette"], 0,
                  "silhouette")
    _, verdict, lines = paper.claim2(fig)
    text = "\n".join(lines)
    assert "family is confounded with size and tokenizer: one LLM backbone (smollm2) " \
        "against one non-LLM backbone (minilm)" in text
    assert "LLM − non-LLM off-task change" in text and "(1.96 + 0.84)" in text
    fig = Figures(_claim2_rows(["llm1", "llm2"], ["enc1", "enc2", "enc3"]), ["a", "b", "c"],
                  ["silhouette"], 0, "silhouette")
    text = "\n".join(paper.claim2(fig)[2])
    assert "across 2 LLM backbone(s) (llm1, llm2) and 3 non-LLM backbone(s) (enc1, enc2, " \
        "enc3)" in text and "confounded" not in text
    fig = Figures(_claim2_rows(["llm1"], ["enc1", "enc2"]), ["a", "b", "c"], ["silhouette"], 0,
                  "silhouette")
    assert "with one LLM backbone, family is still confounded" in "\n".join(
        paper.claim2(fig)[2])


def test_claim3_states_the_power_of_each_comparison() -> None:
    rows = [_row("LLM base", "llm", "llm", None),
            _row("LLM + LoRA", "llm", "llm", "a", shift=0.6),
            _row("LLM + LoRA + soup", "llm", "llm", "a", "soup", shift=0.5, seed=3),
            _row("LLM + LoRA + slerp", "llm", "llm", "a", "slerp", shift=0.5, seed=4)]
    fig = Figures(rows, ["a", "b", "c"], ["silhouette"], 0, "silhouette")
    _, verdict, lines = paper.claim3(fig)
    power_line = next(line for line in lines if line.startswith("smallest effect"))
    for name in ("gain kept over half", "balance vs soup", "balance vs unmerged"):
        assert name in power_line
    if verdict.startswith("inconclusive"):  # one training seed: the bound is that seed's
        assert verdict.endswith("(80% power), within one training seed")


STAGE = paper.STAGE_SLERP


def _claim3_rows(stage_shift: float) -> list[Row]:
    def merged(merge: str, shift: float, seed: int, **roles: object) -> Row:
        row = _row(f"LLM + LoRA + {merge}", "llm", "llm", "a", merge, shift=shift, seed=seed,
                   **roles)
        row.variants = {f"v-{merge}"}
        return row
    return [_row("LLM base", "llm", "llm", None),
            _row("LLM + LoRA", "llm", "llm", "a", shift=0.6),
            merged("soup", 0.5, 3),
            merged("slerp", 0.5, 4, control="linear"),
            merged("linear", 0.5, 4),
            merged(STAGE, stage_shift, 5, control="linear"),
            merged("linear:between=checkpoints", stage_shift, 6)]


def test_claim3_is_judged_on_the_stage_slerp_and_across_tasks_together() -> None:
    """Issue #32 point 6: the single-task verdict on SLERP of the stage task vectors, its
    fallback shown, its control found by its endpoints, the cross-task comparisons judged with
    it, and the base-final SLERP as the degenerate case outside the verdict."""
    fig = Figures(_claim3_rows(1.5), ["a", "b", "c"], ["silhouette"], 0, "silhouette")
    stats = {"v-slerp": {"linear fallback": 1.0}, f"v-{STAGE}": {"linear fallback": 0.02}}
    _, verdict, lines = paper.claim3(fig, stats)
    text = "\n".join(lines)
    assert lines[0].startswith(f"**single-task, on `{STAGE}`** (SLERP of the task vectors")
    assert "linear fallback 0.02): **supported**" in lines[0] and verdict == "supported"
    assert "SLERP − its linear:between=checkpoints control" in text
    assert "degenerate case, not in the verdict: `slerp` (between the base and the final " \
        "checkpoint; linear fallback 1.00" in text and "SLERP − control +0.000" in text
    # a cross-task part that goes the other way makes the whole claim not supported
    against = paper.Judged([-1, 0], [None, None], 2)
    _, verdict, lines = paper.claim3(fig, stats, ("across tasks", against, ["across: x"]))
    assert verdict == "not supported" and "**single-task" in lines[1]
    assert "**across tasks: not supported**" in lines and "across: x" in lines
    assert lines[0].startswith("the verdict is that of the single-task and the cross-task")
    # without the stage SLERP (a store from before), judged on the base-final one as before
    rows = [r for r in _claim3_rows(1.5) if "between" not in r.merge]
    _, _, lines = paper.claim3(Figures(rows, ["a", "b", "c"], ["silhouette"], 0, "silhouette"))
    assert lines[0].startswith("task gain kept") and "degenerate" not in "\n".join(lines)


def test_a_control_is_the_one_with_the_same_endpoints() -> None:
    rows = _claim3_rows(1.0)
    same = tradeoff.same_run(Figures(rows, ["a"], ["silhouette"], 0, "silhouette"), rows[3])
    assert tradeoff.control_of(rows[5], same) is rows[6]  # between=checkpoints
    assert tradeoff.control_of(rows[3], same) is rows[4]  # plain linear for base-final
    assert tradeoff.params("slerp:t=0.3,between=checkpoints") == {"t": "0.3",
                                                                  "between": "checkpoints"}


def test_a_one_seed_bound_says_it_holds_for_that_seed() -> None:
    small = detectable_se(0.01)
    assert judged([0], [small], seeds=1) == \
        f"inconclusive: no effect larger than {small.effect:.3f} (80% power), within one " \
        "training seed"
    assert judged([0], [small], seeds=2).endswith("(80% power)")


def _merged(encoder: str, task: str | None, merge: str, scores: dict[str, float],
            tasks: list[str] | None = None, seed: int = 7, n: int = 200) -> Row:
    noise = np.random.default_rng(seed).normal(0, 0.3, n)
    row = Row("g", encoder, "full" if task or tasks else "none",
              "+".join(tasks) if tasks else task, merge, trained=bool(task or tasks),
              merged=merge != "none", roles={"tasks": tasks} if tasks else {},
              seeds=[0] if task or tasks else [])
    for t, v in scores.items():
        row.values[(t, "silhouette")] = [float((v + noise).mean())]
        row.samples[(t, "silhouette")] = [v + noise]
    return row


def test_the_ranking_says_which_adjacent_methods_it_separates() -> None:
    base = _merged("enc", None, "none", {"a": 0.1, "b": 0.1, "c": 0.0}, seed=1)
    tunes = [_merged("enc", t, "none", {"a": 0.9 if t == "a" else 0.1,
                                        "b": 0.9 if t == "b" else 0.1, "c": 0.0}, seed=2)
             for t in ("a", "b")]
    ties = _merged("enc", None, "ties:over=tasks", {"a": 0.8, "b": 0.8, "c": 0.0}, ["a", "b"], 3)
    ta = _merged("enc", None, "task-arithmetic:over=tasks", {"a": 0.79, "b": 0.79, "c": 0.0},
                 ["a", "b"], 4)
    soup = _merged("enc", None, "soup:over=tasks", {"a": 0.3, "b": 0.3, "c": 0.0}, ["a", "b"], 5)
    fig = Figures([base, *tunes, ties, ta, soup], ["a", "b", "c"], ["silhouette"], 0,
                  "silhouette")
    text = "\n".join(section(fig, {}))
    assert "Adjacent ranks: the run separates 1 of 2 pairs." in text
    tied = next(line for line in text.splitlines() if line.startswith("| ties − task-arithmetic"))
    split = next(line for line in text.splitlines() if line.startswith("| task-arithmetic − soup"))
    assert "| tied" in tied and "| separated" in split
    assert "*detectable*" in text and "(1.96 + 0.84)" in text


def test_adjacent_pairs_reuse_the_paired_draws() -> None:
    shared = _draws(0.1, seed=5)
    a, b = Estimate(0.9, 0.9 + shared), Estimate(0.8, 0.8 + shared)  # paired: one shift
    c = Estimate(0.7, 0.7 + _draws(0.1, seed=6))
    rows = [Ranked(name, e, None, None, None, 1) for name, e in
            (("a", a), ("b", b), ("c", c), ("d", None))]
    pairs = ranks.pairwise([r.retention for r in rows])
    for i, r in enumerate(rows):
        r.p_next = pairs.get((i, i + 1))
    body = adjacent(rows, seeds=1)
    assert [r[-1] for r in body] == ["separated", "tied", "n/a"]
    assert body[0][2] == "0.000"  # a constant paired difference: its MDE is zero
    assert body[0][3] == "< 0.001"


def test_chance_is_the_majority_share_of_the_stored_labels() -> None:
    balanced, skewed = chance.of_labels([0, 1, 2] * 4), chance.of_labels([0] * 7 + [1] * 3)
    assert balanced is not None and balanced.value == pytest.approx(1 / 3)
    assert balanced.text() == "0.333 (1/3)"
    assert skewed is not None and skewed.value == pytest.approx(0.7)
    assert skewed.text() == "0.700 (majority of 2 classes)" and skewed.rows == 10
    assert chance.is_accuracy("probe-accuracy") and chance.is_accuracy("knn-accuracy:k=5")
    assert not chance.is_accuracy("silhouette")
    assert chance.test_size(skewed, [10]) == "10"
    assert chance.test_size(skewed, [3]) == "10 (3 scored)"
    assert chance.test_size(skewed, [3, 4]) == "10 (3–4 scored)"


def test_every_accuracy_on_the_page_states_its_chance_level() -> None:
    rows = [_row("LLM base", "llm", "llm", None, metric="probe-accuracy", n=12),
            _row("LLM + LoRA", "llm", "llm", "a", metric="probe-accuracy", n=12, shift=0.5)]
    for r in rows:  # a probe scored on 4 held-out rows of each task's 12
        for key, (values,) in r.samples.items():
            values[4:] = np.nan
            r.values[key] = [float(np.nanmean(values))]
    levels = chance.levels({"a": _sample("a", [0] * 9 + [1] * 3),
                            "b": _sample("b", [0, 1] * 6), "c": _sample("c", [0, 1, 2] * 4)})
    text = "\n".join(tables.every_metric(rows, ["a", "b", "c"], ["probe-accuracy"], {}, levels))
    assert "| *chance*" in text and "0.750 (majority of 2 classes)" in text
    assert "0.500 (1/2)" in text and "0.333 (1/3)" in text
    assert "| *eval rows*" in text and "12 (4 scored)" in text
    assert "does not declare whether each row is predicted while held out" in text
    plain = "\n".join(tables.every_metric(rows, ["a", "b", "c"], ["probe-accuracy"], {}))
    assert "*chance*" not in plain  # no samples, nothing claimed
    fig = Figures(rows, ["a", "b", "c"], ["silhouette", "probe-accuracy"], 0, "silhouette")
    fig.chance = levels
    said = "\n".join(leaderboard._chance(fig))
    assert "`probe-accuracy` is an accuracy" in said
    assert "a: chance 0.750 (majority of 2 classes), eval rows 12 (4 scored)" in said
