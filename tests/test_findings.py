"""Paired bootstrap estimates and the verdict rule behind the leaderboard's claims."""

from __future__ import annotations

import numpy as np
import pytest

from harness.report import paper
from harness.report.figures import Figures, verdict
from harness.report.rows import Row
from harness.report.stats import Bootstrap, Estimate, mean_of


def test_estimate_is_the_finite_mean_with_draws() -> None:
    boot = Bootstrap(seed=0, resamples=500)
    values = np.array([1.0, 0.0, np.nan, 1.0, 1.0])
    e = boot.estimate("parity", values)
    assert e.value == pytest.approx(0.75)
    lo, hi = e.interval()
    assert 0.0 <= lo < 0.75 < hi <= 1.0
    assert boot.estimate("parity", values).draws.tolist() == e.draws.tolist()  # seeded


def test_paired_differences_are_tight() -> None:
    boot = Bootstrap(seed=0, resamples=500)
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    same = boot.estimate("t", base) - boot.estimate("t", base)
    assert same.value == 0 and same.interval() == (0.0, 0.0) and same.sign() == 0
    shifted = boot.estimate("t", base + 0.05) - boot.estimate("t", base)
    assert shifted.sign() == 1  # a small shift on the same rows is resolved when paired
    assert (boot.estimate("t", base) - boot.estimate("t", base + 0.05)).sign() == -1
    assert mean_of([shifted, shifted]).value == pytest.approx(0.05)
    assert Estimate(1.0).interval() is None and Estimate(1.0).sign() == 0


def test_verdict_rule() -> None:
    assert verdict([1, 1]) == "supported"
    assert verdict([1, 0]) == "inconclusive"
    assert verdict([1, -1]) == "not supported"
    assert verdict([]) == "inconclusive"


def _row(group: str, encoder: str, adapter: str, task: str | None, merge: str,
         shift: float, others: float, n: int = 120) -> Row:
    rng = np.random.default_rng(1)
    base = rng.normal(0.1, 0.3, n)
    roles = {"parameter_efficient": adapter == "lora", "merge": None if merge == "none" else merge,
             "control": "linear" if merge == "slerp" else ""}
    row = Row(group, encoder, adapter, task, merge, family="llm", trained=task is not None,
              merged=merge != "none", roles=roles, seeds=[0] if task else [])
    for t in ("a", "b", "c"):
        values = base + (shift if t == task else others)
        row.values[(t, "silhouette")] = [float(values.mean())]
        row.samples[(t, "silhouette")] = [values]
    return row


def _claim_rows(train_task: str) -> list[Row]:
    """An LLM base, its LoRA on ``train_task``, and soup and SLERP of that LoRA."""
    return [_row("LLM base", "llm", "none", None, "none", 0, 0),
            _row("LLM + LoRA", "llm", "lora", train_task, "none", 0.6, -0.05),
            _row("LLM + LoRA + soup", "llm", "lora", train_task, "soup", 0.5, -0.04),
            _row("LLM + LoRA + slerp", "llm", "lora", train_task, "slerp", 0.5, 0.08)]


def test_claims_follow_the_figures() -> None:
    rows = _claim_rows("a")
    fig = Figures(rows, ["a", "b", "c"], ["silhouette"], seed=0, primary="silhouette")
    assert fig.gain(rows[1]).value == pytest.approx(0.6)
    assert fig.off_change(rows[1]).value == pytest.approx(-0.05)
    assert fig.balance(rows[1]).value == pytest.approx(0.275)
    claims = {title.split()[0]: (v, lines) for title, v, lines in paper.claims(fig, set())}
    assert claims["LLM"][0] == "not tested by this run"  # no non-LLM base here
    assert claims["LoRA"][0] == "supported"  # gain up, off-task down
    assert claims["SLERP"][0] == "supported"  # keeps most gain, best balance
    for name in ("LoRA", "SLERP"):  # every verdict states its power (issue #32)
        assert any(line.startswith("smallest effect each comparison could detect (95% "
                                   "two-sided, 80% power") for line in claims[name][1])
    marks = fig.best_marks()
    assert marks[id(rows[3])] == "★"


def test_claims_when_the_train_task_is_not_evaluated() -> None:
    rows = _claim_rows("z")
    fig = Figures(rows, ["a", "b", "c"], ["silhouette"], seed=0, primary="silhouette")
    assert fig.gain(rows[1]) is None and fig.balance(rows[1]) is None
    verdicts = [v for _, v, _ in paper.claims(fig, set())]
    assert verdicts[2] == "not tested by this run"


def test_a_lower_is_better_primary_flips_gains() -> None:
    rows = _claim_rows("a")
    up = Figures(rows, ["a", "b", "c"], ["silhouette"], seed=0, primary="silhouette")
    down = Figures(rows, ["a", "b", "c"], ["silhouette"], seed=0, primary="silhouette",
                   higher={"silhouette": False})
    for row in rows[1:]:
        assert down.gain(row).value == pytest.approx(-up.gain(row).value)
        assert down.balance(row).value == pytest.approx(-up.balance(row).value)
        assert down.change(row, rows[0], "a") == pytest.approx(-up.change(row, rows[0], "a"))
    assert down.best_marks()[id(rows[2])] == "★"  # soup now has the best (least bad) balance
