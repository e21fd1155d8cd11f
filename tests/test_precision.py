"""precision=auto is settled per machine before any key is made (``Encoder.settled``): the
settled value is in every key, in `harness export` and on the leaderboard, so a store filled in
fp32 is not reused by a run that settles bf16; a Ray run uses the driver's choice everywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_hf import tiny_bert  # noqa: F401, F811 - the fixture, shared

from harness import keys
from harness.api import Encoder
from harness.cli import main
from harness.params import label
from harness.plan import plan_request
from harness.plugins import hf as hf_module
from harness.plugins.pretrained import MiniLM, SmolLM2
from harness.selection import Request
from harness.settle import pinned


def amx(monkeypatch: pytest.MonkeyPatch, present: bool) -> None:
    monkeypatch.setattr(hf_module, "cpu_bf16_pays", lambda cpuinfo="": present)


@pytest.mark.parametrize("cls", [MiniLM, SmolLM2])
def test_auto_is_settled_from_the_cpu_flags(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    # SmolLM2 settles its training attention kernel too (math on a CPU)
    more = {"train_attention": "math"} if cls is SmolLM2 else {}
    amx(monkeypatch, False)
    assert cls().settled("cpu") == cls(precision="fp32", **more)
    amx(monkeypatch, True)
    assert cls().settled("cpu") == cls(precision="bf16", **more)
    assert cls(precision="fp32").settled("cpu") == cls(precision="fp32", **more)  # a pin stays
    # a row name omits fp32 only; bf16 is always said
    assert label(cls(precision="fp32")) == cls.name
    assert label(cls(precision="bf16")) == f"{cls.name}:precision=bf16"
    assert cls(precision="bf16").number_format() == "bf16"


def test_the_settled_precision_is_in_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cli import load_registry

    reg = load_registry([])
    request = Request(encoders=["minilm", "minilm:precision=fp32"], adapters=["none"],
                      merges=["none"], tasks=["parity"], metrics=["silhouette"],
                      profile="smoke")
    amx(monkeypatch, False)
    fp32 = plan_request(reg, request)
    # auto and an explicit fp32 are one encoder here: one base variant
    assert len(fp32.variants) == 1 and fp32.variants[0].encoder == MiniLM(precision="fp32")
    assert fp32.variants[0].record(fp32.profile).info["precision"] == "fp32"
    amx(monkeypatch, True)
    bf16 = plan_request(reg, request)
    assert {v.encoder.number_format() for v in bf16.variants} == {"bf16", "fp32"}
    assert not {v.key for v in bf16.variants if v.encoder.number_format() == "bf16"} & \
        {v.key for v in fp32.variants}
    # the plan records what it settled, and a worker given those pins plans the same keys on
    # a machine that would settle otherwise
    assert [after["precision"] for _, after in bf16.pins] == ["bf16"]
    amx(monkeypatch, False)
    worker = plan_request(reg, request, settle=pinned(bf16.pins))
    assert [v.key for v in worker.variants] == [v.key for v in bf16.variants]


def test_a_settle_that_changes_the_type_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.api import HarnessError
    from harness.cli import load_registry

    monkeypatch.setattr(MiniLM, "settled", lambda self, device: object())
    request = Request(encoders=["minilm"], adapters=["none"], merges=["none"],
                      tasks=["parity"], metrics=["silhouette"], profile="smoke")
    with pytest.raises(HarnessError, match="settled\\(\\) returned object"):
        plan_request(load_registry([]), request)


def test_an_encoder_without_machine_choices_keeps_its_keys() -> None:
    from harness.plugins.scratch import Scratch

    enc: Encoder = Scratch()
    assert enc.settled("cpu") is enc and enc.number_format() == "fp32"
    assert keys.encoder_key(enc) == keys.encoder_key(Scratch())


def _run(model: str, store: Path, out: Path, precision: str) -> None:
    code = main(["run", "--encoder", f"hf:model={model},precision={precision}", "--adapter",
                 "none", "--merge", "none", "--task", "parity", "--task", "primality",
                 "--metric", "silhouette", "--profile", "smoke", "--device", "cpu",
                 "--store", str(store),
                 "--out", str(out)])
    assert code == 0


def test_a_fp32_store_is_not_reused_by_a_bf16_run(
        tiny_bert: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    store, out = tmp_path / "s", tmp_path / "lb" / "README.md"
    _run(tiny_bert, store, out, "fp32")
    assert capsys.readouterr().out.strip() == "cells: 2 computed, 0 reused, 0 failed"
    amx(monkeypatch, False)  # auto settles fp32 here: the fp32 cells are this run's
    _run(tiny_bert, store, out, "auto")
    assert capsys.readouterr().out.strip() == "cells: 0 computed, 2 reused, 0 failed"
    amx(monkeypatch, True)  # auto settles bf16: nothing of the fp32 run is reused
    _run(tiny_bert, store, out, "auto")
    captured = capsys.readouterr()
    assert captured.out.strip() == "cells: 2 computed, 0 reused, 0 failed"
    assert main(["export", "--store", str(store), "--format", "json"]) == 0
    cells = json.loads(capsys.readouterr().out)
    cells = cells["cells"] if isinstance(cells, dict) else cells
    assert sorted({c["precision"] for c in cells}) == ["bf16", "fp32"]
    for c in cells:  # the row name says bf16 and only bf16
        assert ("precision=bf16" in c["encoder"]) == (c["precision"] == "bf16")
    page = out.read_text()
    assert "- precision (the number format" in page
    block = page.split("## Reproducibility")[1].split("\n- harness source")[0]
    assert re.search(r"hf:model=\S+ bf16$", block), block  # the rows of this run: bf16
    assert "precision=" not in block.split("part of every key):")[1], block


def test_rows_of_two_precisions_are_never_one_row() -> None:
    from harness.report.rows import encoder_label
    from harness.store.records import VariantRecord

    def record(label: str, info: dict) -> VariantRecord:
        return VariantRecord("k", label, "non-llm", "none", None, None, "none", "g", "", info)

    old = {"encoder": {"name": "minilm", "version": "1",
                       "params": {"pooling": "mean", "precision": "auto"}}}
    assert record("minilm", old).precision == "auto"  # stored before it was settled
    assert encoder_label(record("minilm", old)) == "minilm:precision=auto"
    assert encoder_label(record("minilm:pooling=cls", old)) == \
        "minilm:pooling=cls,precision=auto"
    assert encoder_label(record("minilm", {**old, "precision": "fp32"})) == "minilm"
    bf16 = record("minilm:precision=bf16", {**old, "precision": "bf16"})
    assert encoder_label(bf16) == "minilm:precision=bf16"
    assert encoder_label(record("scratch", {"encoder": {"params": {}}})) == "scratch"
