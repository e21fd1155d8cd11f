"""Transformers encoders and LoRA on tiny random models saved to a temporary folder: the same
loading code a user with a hub connection or a local model folder runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from harness.api import PROFILES, HarnessError
from harness.cli import main
from harness.params import build
from harness.plugins import lora as lora_module
from harness.plugins.hf import (
    HF,
    auto_precision,
    autocast_dtype,
    cpu_bf16_pays,
    looks_local,
    pool,
    quiet_hub,
)
from harness.plugins.lora import Lora

SEQS = [(1, 2, 3, 4), (10, 200, 30, 4, 5, 6), (7, 11, 13, 29), (1, 2, 3, 4)]


def _tokenizer():  # a character-level tokenizer over the rendered sequences
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", *"0123456789,"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=16, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=16, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=64)).save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return str(folder)


def test_family_is_inferred(tiny_llama: str, tiny_bert: str) -> None:
    assert HF(model=tiny_llama).family == "llm"
    assert HF(model=tiny_bert).family == "non-llm"
    assert HF(model=tiny_bert, family="llm").family == "llm"
    assert HF(model=tiny_llama).trust_remote_code is False


def test_bad_models_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="needs model="):
        build(HF, "encoder", {})
    with pytest.raises(HarnessError, match="cannot read the config"):
        build(HF, "encoder", {"model": str(tmp_path)})
    with pytest.raises(HarnessError, match="not one of"):
        build(HF, "encoder", {"model": str(tmp_path), "pooling": "max"})
    # given family= skips the inference, not the check of the model
    with pytest.raises(HarnessError, match="folder .*no-such-folder' does not exist"):
        build(HF, "encoder", {"model": str(tmp_path / "no-such-folder"), "family": "llm"})
    (tmp_path / "config.json").write_text('{"model_type": "bert", "hidden_size": "x"}')
    with pytest.raises(HarnessError, match="is a file, not a model folder"):
        build(HF, "encoder", {"model": str(tmp_path / "config.json"), "family": "llm"})
    with pytest.raises(HarnessError, match="hidden_size.*expected int"):  # the hub's own error
        build(HF, "encoder", {"model": str(tmp_path), "family": "non-llm"})


def test_local_paths_and_hub_ids() -> None:
    assert all(looks_local(m) for m in ["/abs/m", "./m", "../m", "~/m", "a/b/c", "a\\b"])
    assert not any(looks_local(m) for m in ["gpt2", "BAAI/bge-base-en-v1.5"])


def test_hub_retry_warnings_are_quiet(caplog: pytest.LogCaptureFixture) -> None:
    from huggingface_hub.utils import logging as hub_logging

    http = hub_logging.get_logger("huggingface_hub.utils._http")
    with quiet_hub():
        http.warning("inside: Retrying in 1s")
    http.warning("after: Retrying in 1s")
    assert [r.getMessage() for r in caplog.records] == ["after: Retrying in 1s"]


@pytest.fixture(scope="module")
def own_code_bert(tiny_bert: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_bert with an auto_map in its config: transformers wants to run own_code.py."""
    import shutil

    folder = tmp_path_factory.mktemp("own-code") / "model"
    shutil.copytree(tiny_bert, folder)
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace(
        '"model_type": "bert"', '"model_type": "own-bert", "auto_map": {"AutoConfig": '
        '"own_code.OwnConfig", "AutoModel": "own_code.OwnModel"}'))
    (folder / "own_code.py").write_text(
        f"import pathlib\npathlib.Path({str(folder.parent / 'RAN')!r}).touch()\n")
    return folder


@pytest.mark.parametrize("family", ["", "llm", "non-llm"])
@pytest.mark.parametrize("case", ["missing", "auto_map"])
def test_bad_models_stop_the_run_whatever_the_family(
        case: str, family: str, own_code_bert: Path, tmp_path: Path) -> None:
    """One usage-error line and exit 2 before any work: no cell, no store, no leaderboard."""
    from tests.test_bad_input import run_cli

    folder = own_code_bert if case == "auto_map" else tmp_path / "no" / "such"
    spec = f"hf:model={folder}" + (f",family={family}" if family else "")
    store, out = tmp_path / "S", tmp_path / "lb.md"
    code, stdout, err = run_cli(["run", "--encoder", spec, "--task", "parity", "--profile",
                                 "smoke", "--store", str(store), "--out", str(out)])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and stdout == "", err
    assert lines[0].startswith("harness: error: encoder 'hf': "), err
    expected = ("needs its own code to load; pass trust_remote_code=true" if case == "auto_map"
                else "does not exist")
    assert f"folder {str(folder)!r} {expected}" in lines[0], lines[0]
    if case == "auto_map":
        assert "auto_map" in lines[0]
    assert not store.exists() and not out.exists()
    assert not (own_code_bert.parent / "RAN").exists()  # the model's code never ran


@pytest.mark.parametrize("pooling", ["mean", "last", "cls"])
def test_embeddings_ignore_padding(tiny_llama: str, pooling: str) -> None:
    backbone = HF(model=tiny_llama, pooling=pooling).load("cpu")
    together = backbone.embed(SEQS, batch_size=4)  # padded to the longest
    alone = np.stack([backbone.embed([s])[0] for s in SEQS])  # no padding at all
    assert together.shape == (4, 32) and together.dtype == np.float32
    assert np.allclose(together, alone, atol=1e-4)
    assert not np.allclose(together[0], together[2])


@pytest.mark.parametrize("which", ["llama", "bert"])
def test_bf16_embed_casts_once_with_the_same_result(tiny_llama: str, tiny_bert: str,
                                                    which: str) -> None:
    """``HFBackbone.embed`` casts each linear weight once per call, not per batch: the same
    embeddings bit for bit as autocast's per-batch casts (``Backbone.embed``), with the fp32
    parameters back in place afterwards."""
    from harness.api import Backbone

    backbone = HF(model=tiny_llama if which == "llama" else tiny_bert,
                  precision="bf16").load("cpu")
    before = {name: p for name, p in backbone.module.named_parameters()}
    values = {name: p.detach().clone() for name, p in before.items()}
    seqs = SEQS * 5
    fast = backbone.embed(seqs, batch_size=3)  # seven batches
    assert np.array_equal(fast, Backbone.embed(backbone, seqs, batch_size=3))
    after = dict(backbone.module.named_parameters())
    assert all(after[name] is p and p.dtype == torch.float32 and torch.equal(p, values[name])
               for name, p in before.items())


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_no_kv_cache_same_numbers(tiny_llama: str, precision: str) -> None:
    """A loaded backbone keeps no KV cache (SmolLM2's embedding passes ran 5-15% faster
    without one): the same embeddings and the same gradients bit for bit as with it."""
    backbone = HF(model=tiny_llama, precision=precision).load("cpu")
    assert backbone.module.config.use_cache is False
    seqs = SEQS * 5
    out, grads = {}, {}
    for cache in (True, False):
        backbone.module.config.use_cache = cache
        out[cache] = backbone.embed(seqs, batch_size=3)
        backbone.module.train()
        weight = backbone.module.layers[0].self_attn.q_proj.weight
        weight.grad = None
        backbone.encode(seqs).square().sum().backward()
        grads[cache] = weight.grad.clone()
        backbone.module.eval()
    assert np.array_equal(out[True], out[False])
    assert torch.equal(grads[True], grads[False]) and grads[False].abs().sum() > 0


def test_pool_on_both_padding_sides() -> None:
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(hidden, right, "last").flatten().tolist() == [1.0, 7.0]
    assert pool(hidden, left, "last").flatten().tolist() == [3.0, 7.0]
    assert pool(hidden, right, "mean").flatten().tolist() == [0.5, 5.5]
    assert pool(hidden, right, "cls").flatten().tolist() == [0.0, 4.0]


def test_precision_choice() -> None:
    assert autocast_dtype("cpu", "fp32") is None
    assert autocast_dtype("cpu", "bf16") is torch.bfloat16
    assert autocast_dtype("cpu", "auto") is (torch.bfloat16 if auto_precision("cpu") == "bf16"
                                             else None)


def test_cpu_bf16_from_the_flags(tmp_path: Path) -> None:
    """Native bf16 (AMX, or avx512_bf16 alone) read from the CPU's flags, never timed: the
    same answer in every process."""
    amx, zen, avx2 = tmp_path / "amx", tmp_path / "zen", tmp_path / "avx2"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n\n"
                   "processor\t: 1\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    zen.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma avx512f avx512_bf16\n")
    avx2.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma avx512f avx512_vnni\n"
                    "model name\t: amx_bf16 avx512_bf16 in a name are not flags\n")
    assert cpu_bf16_pays(str(amx)) is True
    assert cpu_bf16_pays(str(zen)) is True
    assert cpu_bf16_pays(str(avx2)) is False
    assert cpu_bf16_pays(str(tmp_path / "missing")) is False


def test_auto_precision_follows_the_backbones_declaration(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 on a native-bf16 CPU only for a backbone that declares it pays (bf16_on_cpu)."""
    import harness.plugins.hf as hf_module

    for native in (True, False):
        monkeypatch.setattr(hf_module, "cpu_bf16_pays", lambda cpuinfo="", n=native: n)
        assert auto_precision("cpu") == ("bf16" if native else "fp32")
        assert auto_precision("cpu", bf16_on_cpu=False) == "fp32"

        @dataclasses.dataclass(frozen=True)
        class Declines(HF):
            bf16_on_cpu: ClassVar[bool] = False

        with monkeypatch.context() as m:  # settle without reading a model folder
            m.setattr(HF, "__post_init__", lambda self: None)
            assert HF(model="x").settled("cpu").precision == ("bf16" if native else "fp32")
            assert Declines(model="x").settled("cpu").precision == "fp32"
            assert HF(model="x", precision="bf16").settled("cpu").precision == "bf16"
            # loaded without settling (harness check, the bench), as a run would compute
            assert Declines(model="x").precision_on("cpu") == "fp32"
            assert HF(model="x").precision_on("cpu") == ("bf16" if native else "fp32")


def test_auto_precision_on_cuda_needs_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA, bf16 only where the GPU has it natively (not emulated, as on a T4 or V100)."""
    calls: list[bool] = []

    def supported(including_emulation: bool = True) -> bool:
        calls.append(including_emulation)
        return including_emulation  # an emulating GPU: bf16 only if emulation counts

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert auto_precision("cuda:1") == "fp32" and calls == [False]
    assert autocast_dtype("cuda", "auto") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert auto_precision("cuda") == "bf16"
    assert autocast_dtype("cuda", "auto") is torch.bfloat16


def test_lora_checkpoints_are_folded_dense_deltas(tiny_llama: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = HF(model=tiny_llama).load("cpu")
    before = {k: v.clone() for k, v in backbone.weights().items()}
    seen: list[dict[str, torch.Tensor]] = []
    real_folded = lora_module.folded

    def spy(model):  # record what the stages computed by hand
        out = real_folded(model)
        seen.append(out)
        return out

    monkeypatch.setattr(lora_module, "folded", spy)
    train = [(2, 4, 6, 8), (1, 3, 5, 7)] * 8
    checkpoints = Lora(rank=2).fit(backbone, train, [0, 1] * 8, 0, PROFILES["smoke"])
    assert [c.stage for c in checkpoints] == [0, 1]
    final = checkpoints[-1].tensors
    assert sorted(final) == sorted(seen[-1])  # only the adapted projections
    assert all(k.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight",
                           "o_proj.weight")) for k in final)
    for key, value in final.items():  # merge_and_unload == W + ΔW computed by hand
        assert torch.allclose(value, seen[-1][key], atol=1e-6)
        assert not torch.equal(value, before[key])
    # the module is a plain model again: no LoRA layers, the original tensor names
    assert sorted(backbone.weights()) == sorted(before)
    assert not any("lora_" in n for n, _ in backbone.module.named_modules())


def _lora_fit(folder: str, train_attention: str = "sdpa") -> tuple[list, dict]:
    """A LoRA fit on a tiny model in bf16 autocast; its checkpoints and the weights after."""
    from harness.plugins.hf import load_pretrained

    backbone = load_pretrained(folder, "mean", "cpu", "bf16", train_attention=train_attention)
    train = [(2, 4, 6, 8), (1, 3, 5, 7, 9, 11)] * 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        checkpoints = Lora(rank=2).fit(backbone, train, [0, 1] * 8, 0, PROFILES["smoke"])
    return checkpoints, backbone.weights()


@pytest.mark.parametrize("which", ["llama", "bert"])
def test_lora_training_casts_frozen_weights_once_with_the_same_result(
        tiny_llama: str, tiny_bert: str, which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """In bf16 training the frozen base weights are cast once for all steps, not by autocast
    on every step: every checkpoint the same bit for bit, the fp32 weights back in place."""
    import contextlib

    from harness.plugins import casts

    folder = tiny_llama if which == "llama" else tiny_bert
    made: list[int] = []
    real_cast = casts.cast
    monkeypatch.setattr(casts, "cast", lambda w, d: made.append(id(w)) or real_cast(w, d))
    fast, after = _lora_fit(folder)
    # every frozen linear weight (all but LoRA's factors) cast once for all steps
    assert len(made) == len(set(made)) == (14 if which == "llama" else 13)
    assert all(v.dtype == torch.float32 for v in after.values())
    monkeypatch.setattr(casts.FrozenCasts, "applied",
                        lambda self, module, dtype: contextlib.nullcontext())
    slow, _ = _lora_fit(folder)
    assert len(fast) == len(slow) == 2
    for a, b in zip(fast, slow, strict=True):
        assert sorted(a.tensors) == sorted(b.tensors)
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def test_train_attention_math_runs_the_plain_kernel(tiny_llama: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``train_attention=math`` trains with torch's plain attention kernel (no other kernel
    allowed), close to what the fused kernels train; SmolLM2 settles it per device."""
    import torch.nn.attention as attention

    from harness.plugins.pretrained import SmolLM2

    kernels: list[object] = []
    real = attention.sdpa_kernel
    monkeypatch.setattr(attention, "sdpa_kernel",
                        lambda b, **kw: kernels.append(b) or real(b, **kw))
    plain, _ = _lora_fit(tiny_llama, "math")
    assert kernels and all(k == attention.SDPBackend.MATH for k in kernels)
    kernels.clear()
    fused, _ = _lora_fit(tiny_llama, "sdpa")
    assert not kernels
    for a, b in zip(plain, fused, strict=True):
        assert all(torch.allclose(a.tensors[k], b.tensors[k], atol=1e-2) for k in a.tensors)
    assert SmolLM2().settled("cpu").train_attention == "math"
    assert SmolLM2().settled("cuda").train_attention == "sdpa"
    assert SmolLM2(train_attention="sdpa").settled("cpu").train_attention == "sdpa"
    assert SmolLM2().attention_on("cuda:1") == "sdpa"


def test_lora_and_full_in_a_run(tiny_llama: str, tiny_bert: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture) -> None:
    argv = ["run", "--encoder", f"hf:model={tiny_llama},pooling=last", "--encoder",
            f"hf:model={tiny_bert}", "--adapter", "lora:rank=4", "--adapter", "full",
            "--merge", "none", "--task", "parity", "--profile", "smoke",
            "--store", str(tmp_path / "s"), "--out", str(tmp_path / "lb.md")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    # llama: base + lora; bert: base + lora + full  -> 5 variants x 1 task
    assert captured.out.strip() == "cells: 5 computed, 0 reused, 0 failed"
    assert "skipped: hf:model=" in captured.err and "LLMs take lora" in captured.err
    board = (tmp_path / "lb.md").read_text()
    assert "LLM + LoRA" in board and "non-LLM fine-tuned (full)" in board
    stored = list((tmp_path / "s" / "artifacts" / "checkpoints").glob("*/*.safetensors"))
    assert stored and not list((tmp_path / "s").rglob("*.pt"))


def test_unknown_lora_targets_fail_the_cells(tiny_llama: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--encoder", f"hf:model={tiny_llama}", "--adapter",
                 "lora:targets=nope_proj", "--merge", "none", "--task", "parity",
                 "--profile", "smoke", "--store", str(tmp_path / "s"),
                 "--out", str(tmp_path / "lb.md")])
    captured = capsys.readouterr()
    assert code == 1 and "set targets=" in captured.err
    assert captured.out.strip() == "cells: 1 computed, 0 reused, 1 failed"
