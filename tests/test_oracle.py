"""The oracle column (``harness.oracle``): the candidate best on the eval samples beside the one
chosen on the validation samples, scored in a pass of its own that leaves the honest choice as
it is; asked for later, it reruns only the merges."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3

import torch

from harness import oracle
from harness.cli import main


def weights(x: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((3,), x), "b": torch.zeros(2, dtype=torch.bfloat16)}


def test_the_oracle_takes_the_best_mean_and_the_first_of_ties() -> None:
    found = oracle.Oracle("silhouette", ["a", "b"])
    found.record(weights(1.0), [0.2, 0.4])
    found.record(weights(2.0), [0.5, 0.3])  # mean 0.4: the best, first of two
    found.record(weights(3.0), [0.3, 0.5])  # mean 0.4 too, later
    stats = found.stats(weights(1.0))  # the honest choice: found by content, not identity
    assert stats == {oracle.COUNT: 3.0, "tuned: silhouette on a": 0.2,
                     "tuned: silhouette on b": 0.4, "oracle: silhouette on a": 0.5,
                     "oracle: silhouette on b": 0.3}
    assert oracle.parse("oracle: silhouette on a") == (oracle.ORACLE, "silhouette", "a")
    assert oracle.parse("coefficient on a") is None


def test_lower_is_better_and_what_was_never_scored() -> None:
    found = oracle.Oracle("davies-bouldin", ["a"], higher_is_better=False)
    found.record(weights(1.0), [0.9])
    found.record(weights(2.0), [0.4])
    found.record(weights(3.0), [float("-inf")])  # undefined: never the oracle's
    assert found.stats(weights(1.0))["oracle: davies-bouldin on a"] == 0.4
    assert found.stats(weights(7.0)) == {oracle.COUNT: 3.0}  # a pick it never scored
    other = {"w": torch.full((3,), 1.0, dtype=torch.float64), "b": torch.zeros(2)}
    assert found.stats(other) == {oracle.COUNT: 3.0}  # other dtypes are other weights


def _run(store: str, out: str, *extra: str) -> str:
    args = ["run", "--encoder", "scratch", "--adapter", "full", "--task", "parity", "--task",
            "divisible-by-5", "--merge", "ties:over=tasks", "--merge", "soup:over=tasks",
            "--profile", "smoke", "--metric", "silhouette", "--seeds", "1", "--store", store,
            "--out", out, *extra]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(args) == 0
    return printed.getvalue()


def _stats(store: str) -> dict[str, dict[str, float]]:
    with contextlib.closing(sqlite3.connect(f"{store}/results.sqlite")) as db:
        return {merge: json.loads(stats) for merge, stats in db.execute(
            "SELECT v.merge, m.stats FROM merge_stats m JOIN variants v ON v.key = m.variant")}


def _scores(store: str) -> dict[tuple[str, str], float]:
    with contextlib.closing(sqlite3.connect(f"{store}/results.sqlite")) as db:
        return {(c, m): v for c, m, v in db.execute("SELECT cell, metric, value FROM scores")}


def _ranking(out: str) -> dict[str, list[str]]:
    page = open(out, encoding="utf-8").read()
    table = page[page.index("## Merge-method ranking"):].split("| method")[1].split("\n\n")[0]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:]]
    return {r[0].split()[0]: r for r in rows if r}


def test_the_oracle_leaves_the_honest_choice_and_reruns_only_merges(tmp_path) -> None:  # type: ignore[no-untyped-def]
    on, off = str(tmp_path / "on"), str(tmp_path / "off")
    _run(on, str(tmp_path / "on.md"))  # smoke: Profile.oracle is on
    _run(off, str(tmp_path / "off.md"), "--no-oracle")
    assert _scores(on) == _scores(off)  # the oracle's pass changes no cell
    with_oracle, without = _stats(on), _stats(off)
    ties = "ties:over=tasks"
    assert {k: v for k, v in with_oracle[ties].items() if oracle.parse(k) is None
            and k != oracle.COUNT} == without[ties]  # nor what the merge chose
    assert with_oracle[ties][oracle.COUNT] == 10  # 5 scales x 2 densities
    assert oracle.COUNT not in with_oracle["soup:over=tasks"]  # soup chooses nothing
    shown = _ranking(str(tmp_path / "on.md"))
    gap = shown["ties"][4]
    assert gap.startswith("+") and float(gap) >= 0, gap  # the best of them on eval
    assert shown["soup"][4] == "—"
    assert _ranking(str(tmp_path / "off.md"))["ties"][4] == "—"

    # asked for later: ties's merge runs again (its candidates scored); soup's cells and
    # every stored score stay as they were
    printed = _run(off, str(tmp_path / "later.md"), "--oracle")
    assert "cells: 2 computed, 8 reused" in printed  # ties's two cells, their scores kept
    assert _stats(off) == with_oracle and _scores(off) == _scores(on)
