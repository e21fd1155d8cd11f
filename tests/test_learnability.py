"""Learnability (issue #32 point 1): each fine-tune's gain on its eval sample and on its fit
sample (part of its train sample), and the verdict learned / memorised / not learned."""

from __future__ import annotations

import math
from pathlib import Path

from harness import keys
from harness.api import PROFILES
from harness.learnability import LEARNED, fit_tasks, verdict
from harness.registry import load_registry
from harness.samples import eval_sample, fit_sample, train_sample
from harness.store import Store
from tests.smoke_runs import plan_for, run_here


def test_the_verdict_rule() -> None:
    assert LEARNED == 0.05
    assert verdict(0.05, None) == "learned"
    assert verdict(0.049, 0.9) == "memorised"  # learned its train sample only
    assert verdict(0.001, 0.02) == "not learned"  # above zero, but not by LEARNED
    assert verdict(math.nan, None) == "not learned"
    assert verdict(-0.2, math.nan) == "not learned"


def test_the_fit_sample_is_a_balanced_part_of_the_train_sample() -> None:
    reg = load_registry([])
    profile = PROFILES["quick"]
    for name in ("parity", "progression"):
        task = reg.components["tasks"][name]()
        fit = fit_sample(task, profile, 1)
        train = train_sample(task, profile, 1)
        assert len(fit) == profile.eval_size and set(fit) <= set(train)
        assert not set(fit) & set(eval_sample(task, profile, 1))
        counts = [sum(task.label(s) == c for s in fit) for c in range(len(task.classes))]
        assert max(counts) - min(counts) <= 1
        assert fit == fit_sample(task, profile, 1)  # deterministic


def test_fine_tunes_and_their_bases_embed_the_fit_samples() -> None:
    plan = plan_for(load_registry([]), ["parity", "sum-parity"])
    fits = fit_tasks(plan)
    tuned = [v for v in plan.variants if v.adapter is not None and v.merge is None]
    base = next(v for v in plan.variants if v.adapter is None)
    assert {v.key: [t.name for t in fits[v.key]] for v in tuned} == \
        {v.key: [v.train_task.name] for v in tuned if v.train_task is not None}
    assert sorted(t.name for t in fits[base.key]) == ["parity", "sum-parity"]


def test_a_run_stores_the_fit_gain_and_the_page_shows_the_verdicts(tmp_path: Path) -> None:
    tasks = ["parity", "sum-parity"]
    first = run_here(tasks, tmp_path)
    assert first["failed"] == 0
    store = Store(tmp_path / "S", read_only=True)
    try:
        fits = [a for a in store.analyses("smoke", 0) if a.kind == "fit"]
    finally:
        store.close()
    assert sorted(a.tasks[0] for a in fits if a.name == "silhouette") == tasks
    assert all(a.lo <= a.value <= a.hi for a in fits if math.isfinite(a.value))
    page = (tmp_path / "O").read_text()
    section = page.split("## Learnability of the train tasks", 1)[1].split("\n## ", 1)[0]
    assert f"lower 95% bound is at least {LEARNED}" in section
    table = [line for line in section.splitlines() if line.startswith("| parity")
             or line.startswith("| sum-parity")]
    assert len(table) == 2 and all("not measured" not in line for line in table)
    assert all(line.rstrip(" |").endswith(("learned", "memorised", "not learned"))
               for line in table)
    assert run_here(tasks, tmp_path)["computed"] == 0  # nothing redone


def test_lost_fit_embeddings_are_embedded_again_without_rescoring(tmp_path: Path) -> None:
    tasks = ["parity"]
    run_here(tasks, tmp_path)
    plan = plan_for(load_registry([]), tasks)
    tuned = next(v for v in plan.variants if v.adapter is not None and v.merge is None)
    task = tuned.train_task
    assert task is not None
    store = Store(tmp_path / "S")
    try:
        path = store.embeddings_path(keys.fit_embedding_key(tuned, task, plan))
        assert path.exists()
        path.unlink()
        store.db.execute("DELETE FROM analyses WHERE kind = 'fit'")
        store.db.commit()
    finally:
        store.close()
    again = run_here(tasks, tmp_path)
    assert again["computed"] == 0 and again["failed"] == 0
    assert path.exists()
    assert "not measured" not in (tmp_path / "O").read_text().split(
        "## Learnability", 1)[1].split("\n## ", 1)[0]


def test_a_fit_row_of_an_earlier_run_is_not_pooled_with_the_latest(tmp_path: Path) -> None:
    """A fit sample's key changed (``keys.FIT_SAMPLE``): the rows stored under its old key stay
    in the store, and only the latest run's are shown."""
    tasks = ["parity"]
    run_here(tasks, tmp_path)
    page = (tmp_path / "O").read_text().split("## Learnability", 1)[1].split("\n## ", 1)[0]
    plan = plan_for(load_registry([]), tasks)
    tuned = next(v for v in plan.variants if v.adapter is not None and v.merge is None)
    store = Store(tmp_path / "S")
    try:
        store.put_analyses(tuned.key, "an-older-fit-sample", tasks, "smoke", 0, 0,
                           [("fit", "silhouette", 0.5, 0.4, 0.6)])
    finally:
        store.close()
    run_here(tasks, tmp_path)
    again = (tmp_path / "O").read_text().split("## Learnability", 1)[1].split("\n## ", 1)[0]
    assert again == page and "+0.500" not in again
