"""Claim 1's larger sample (issue #32 point 8): more rows per compositional task for the base
models of pretrained encoders only (``Profile.claim_rows``), embedded as the fit samples are,
scored in the analysis stage and read by claim 1 as a paired difference."""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import keys
from harness.api import PROFILES
from harness.claim_sample import claim_tasks
from harness.cli import build_parser, main, request_of
from harness.extras import extra_samples
from harness.plan import Plan, plan_request
from harness.ray_executor import job_spec, run_job
from harness.registry import load_registry
from harness.report import chance, paper, power
from harness.report.figures import Figures
from harness.report.rows import Row
from harness.samples import claim_sample, eval_sample
from harness.store import Artifacts, Store
from harness.store.records import EvalSampleRecord
from tests.smoke_runs import parse_summary

PLUGIN = str(Path(__file__).resolve().parent / "fixtures" / "tiny_models.py")
ARGS = ["run", "--plugin", PLUGIN, "--encoder", "tiny-llm", "--encoder", "tiny-bert",
        "--encoder", "scratch", "--adapter", "lora:rank=4", "--adapter", "full", "--merge",
        "none", "--task", "parity", "--task", "sum-parity", "--train-task", "parity",
        "--profile", "smoke", "--device", "cpu"]
ROWS = 80  # the smoke profile's eval sample has 40


@pytest.fixture()
def more_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROFILES, "smoke", replace(PROFILES["smoke"], claim_rows=ROWS))


def test_quick_scores_600_rows_and_no_existing_key_changes() -> None:
    quick, smoke, paper_ = PROFILES["quick"], PROFILES["smoke"], PROFILES["paper"]
    assert quick.claim_rows == 600 and quick.claim_extra
    assert not smoke.claim_extra and not paper_.claim_extra  # paper: 1000 eval rows already
    # the page's 0.115 at 100 rows scales with 1/sqrt(rows) to below the target at 600
    assert 0.115 * (100 / quick.claim_rows) ** 0.5 < power.TARGET
    without = replace(quick, claim_rows=0)  # the profile as stores before it were keyed
    assert keys.profile_fields(quick) == keys.profile_fields(without)
    task = load_registry([]).components["tasks"]["sum-parity"]()
    assert keys.eval_key(task, quick, 0) == keys.eval_key(task, without, 0)
    assert keys.fit_key(task, quick, 0, 2) == keys.fit_key(task, without, 0, 2)
    assert keys.claim_key(task, quick, 0) != keys.claim_key(task, replace(quick, claim_rows=700),
                                                            0)


def test_the_claim_sample_is_balanced_and_its_own() -> None:
    quick = PROFILES["quick"]
    for name in ("progression", "sum-parity", "digit-sum-mod-3", "monotonic"):
        task = load_registry([]).components["tasks"][name]()
        seqs = claim_sample(task, quick, 0)
        assert len(seqs) == 600 and seqs == claim_sample(task, quick, 0)
        counts = [sum(task.label(s) == c for s in seqs) for c in range(len(task.classes))]
        assert max(counts) - min(counts) <= 1
        assert seqs[:100] != eval_sample(task, quick, 0)


def _plan() -> Plan:
    return plan_request(load_registry([PLUGIN]), request_of(build_parser().parse_args(ARGS)))


def test_only_the_bases_of_pretrained_encoders_embed_it(more_rows: None) -> None:
    plan = _plan()
    found = claim_tasks(plan)
    bases = {v.key: v.encoder.name for v in plan.variants if v.adapter is None}
    assert sorted(bases[k] for k in found) == ["tiny-bert", "tiny-llm"]  # not scratch
    assert all([t.name for t in tasks] == ["sum-parity"] for tasks in found.values())
    extras = extra_samples(plan)
    for v in plan.variants:
        kinds = [x.kind for x in extras.get(v.key, [])]
        assert ("claim" in kinds) == (v.key in found)
    assert {len(x.seqs) for xs in extras.values() for x in xs if x.kind == "claim"} == {ROWS}
    # claim 1 needs a pretrained base of each family: with one, nothing is embedded for it
    one = ARGS[:ARGS.index("--encoder") + 2] + ARGS[ARGS.index("--adapter"):]  # tiny-llm
    assert claim_tasks(plan_request(load_registry([PLUGIN]), request_of(
        build_parser().parse_args(one)))) == {}


def _run(folder: Path) -> dict[str, int]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([*ARGS, "--store", str(folder / "S"), "--out", str(folder / "O")])
    assert code == 0
    return parse_summary(out.getvalue())


def test_a_store_from_before_gets_only_the_claim_embeddings_and_claim_1_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _run(tmp_path)
    assert first["failed"] == 0 and first["computed"] > 0
    before = (tmp_path / "O").read_text()
    assert f"{ROWS} eval rows per compositional task, base models only" not in before
    embeddings = tmp_path / "S" / "artifacts" / "embeddings"
    files = {p.name: p.stat().st_mtime_ns for p in embeddings.glob("*.npy")}

    monkeypatch.setitem(PROFILES, "smoke", replace(PROFILES["smoke"], claim_rows=ROWS))
    again = _run(tmp_path)  # every cell reused: only the claim samples are embedded
    assert again == {"computed": 0, "reused": first["computed"], "failed": 0}
    now = {p.name: p.stat().st_mtime_ns for p in embeddings.glob("*.npy")}
    assert all(now[name] == t for name, t in files.items())  # nothing embedded again
    plan = _plan()
    claims = claim_tasks(plan)
    added = set(now) - set(files)
    want = {f"{keys.embedding_key(v, keys.claim_key(t, plan.profile, 0))}.npy"
            for v, ts in claims.items() for t in ts}
    values = {f"{keys.claim_values_key(v, keys.claim_key(t, plan.profile, 0), 'probe-accuracy')}"
              ".npy" for v, ts in claims.items() for t in ts}
    assert added == want | values and len(want) == 2  # two bases, one compositional task

    store = Store(tmp_path / "S", read_only=True)
    try:
        rows = [a for a in store.analyses("smoke", 0) if a.kind in ("claim", "claim-rows")]
    finally:
        store.close()
    assert sorted((a.kind, a.variant) for a in rows) == sorted(
        (kind, v) for v in claims for kind in ("claim", "claim-rows"))
    assert all(a.value == ROWS for a in rows if a.kind == "claim-rows")
    page = (tmp_path / "O").read_text()
    claim1 = page.split("1. **LLM backbones", 1)[1].split("\n2. ", 1)[0]
    assert "tiny-llm − tiny-bert, base models, mean `probe-accuracy` over sum-parity" in claim1
    assert f"; {ROWS} eval rows per compositional task, base models only)" in claim1
    assert f"this comparison, {ROWS} eval rows per compositional task, base models only " \
        "(the profile's `claim_rows`; every variant's eval sample has 40)" in claim1
    # the rest of the page is what it was
    def rest(text: str) -> tuple[str, str]:
        head, tail = text.split("1. **LLM backbones", 1)
        return head, tail.split("\n2. ", 1)[1]

    assert rest(before) == rest(page)
    assert _run(tmp_path) == again  # a third run: nothing to do
    lost = embeddings / sorted(values)[0]  # per-row values lost: scored again, same page
    lost.unlink()
    assert _run(tmp_path) == again and lost.exists()
    assert (tmp_path / "O").read_text() == page


def _base(encoder: str, family: str, eval_shift: float, claim: np.ndarray | None) -> Row:
    row = Row(f"{family} base", encoder, "none", None, "none", family=family)
    rng = np.random.default_rng(len(encoder))
    values = (rng.random(40) < 0.5 + eval_shift).astype(float)
    row.values[("a", "probe-accuracy")] = [float(values.mean())]
    row.samples[("a", "probe-accuracy")] = [values]
    if claim is not None:
        row.claim[("a", "probe-accuracy")] = ("sample-key", claim)
    return row


def _figures(rows: list[Row]) -> Figures:
    fig = Figures(rows, ["a"], ["probe-accuracy"], 0, "probe-accuracy")
    fig.chance = chance.levels({"a": EvalSampleRecord("k", "a", "smoke", 0, 1, {}, [(i,) for i in
                                                      range(40)], [0, 1] * 20)})
    return fig


def test_claim_1_pairs_the_bases_on_the_larger_sample() -> None:
    n = 2000
    shared = np.random.default_rng(0).random(n)
    llm = (shared < 0.8).astype(float)  # the same sequences: paired rows
    other = (shared < 0.7).astype(float)
    rows = [_base("llm", "llm", 0.0, llm), _base("enc", "non-llm", 0.0, other)]
    fig = _figures(rows)
    _, verdict, lines = paper.claim1(fig, {"a"})
    assert lines[0].startswith("llm − enc, base models, mean `probe-accuracy` over a: "
                               f"{llm.mean() - other.mean():+.3f}")
    # paired: the SE of a 0/1 difference on 10% of the rows, not of two separate means
    effect = float(lines[0].split("detectable: ")[1].split(";")[0])
    assert effect == pytest.approx(2.8 * np.sqrt(0.1 * 0.9 / n), rel=0.15)
    assert f"; {n} eval rows per compositional task, base models only)" in lines[0]
    assert verdict == "supported"  # paired: each row's difference is 0 or 1, never −1
    assert f"this comparison, {n} eval rows per compositional task, base models only (the " \
        "profile's `claim_rows`; every variant's eval sample has 40)" in lines[1]
    # one base without it, or on another sample: the eval rows, as before
    for claim in (None, ("another-sample", other)):
        rows[1].claim.clear()
        if claim is not None:
            rows[1].claim[("a", "probe-accuracy")] = claim
        fig = _figures(rows)
        _, _, lines = paper.claim1(fig, {"a"})
        assert "base models only" not in "\n".join(lines)
        assert "40 eval rows per compositional task" in lines[1]


def test_a_ray_job_embeds_the_claim_sample_of_its_base(tmp_path: Path, more_rows: None
                                                       ) -> None:
    """A worker's part of the plan holds one job's variants; it gets the extra samples of the
    whole plan (``extra_samples``), as it gets the fit samples."""
    plan = _plan()
    request = request_of(build_parser().parse_args(ARGS))
    spec = job_spec(request, str(tmp_path / "S"), "cpu", False, [PLUGIN], 1,
                    {"threads": 1, "gpus": 0}, plan.pins)
    base = next(v for v in plan.variants if v.adapter is None and v.encoder.name == "tiny-bert")
    threads = torch.get_num_threads()
    try:  # run in this process, the job sets torch's threads for it: put them back for the
        result = run_job(spec, [base.key], {})  # later tests (a run's floats depend on them)
    finally:
        torch.set_num_threads(threads)
    assert result["failed"] == 0 and result["computed"] == 2  # its cells: parity, sum-parity
    task = next(t for t in plan.tasks if t.name == "sum-parity")
    key = keys.embedding_key(base.key, keys.claim_key(task, plan.profile, 0))
    X = Artifacts(tmp_path / "S").load_embeddings(key, ROWS)
    assert X is not None and np.isfinite(X).all()


SMALL = '''
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Task


@dataclass(frozen=True)
class Small(Task):
    """A compositional task with 50 sequences: enough for 40 eval rows, not for 80."""
    name: ClassVar[str] = "small-comp"
    classes: ClassVar = ("even", "odd")
    compositional: ClassVar[bool] = True

    def label(self, seq):
        return seq[0] % 2 if len(seq) == 4 and seq[1:] == (1, 2, 3) else None

    def sample(self, n, rng):
        out = []
        for c in (0, 1):
            pool = [(i, 1, 2, 3) for i in range(c, 50, 2)]
            want = n // 2 + (1 if c < n % 2 else 0)
            picked = rng.sample(pool, min(want, len(pool)))
            out += (picked * (want // len(pool) + 1))[:want]
        return out


@hookimpl
def register_tasks(register):
    register(Small)
'''


def test_a_sampler_short_of_the_claim_rows_is_a_usage_error(tmp_path: Path, more_rows: None
                                                            ) -> None:
    plugin = tmp_path / "small.py"
    plugin.write_text(SMALL)
    args = [*ARGS[:ARGS.index("--task")], "--task", "small-comp", "--plugin", str(plugin),
            "--profile", "smoke", "--store", str(tmp_path / "S"), "--out", str(tmp_path / "O")]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args)
    assert code == 2, err.getvalue()
    assert "task 'small-comp': its claim sample of 80 holds 50 distinct sequences" in \
        err.getvalue()
    assert not (tmp_path / "S").exists()  # before any work
