"""The merge contract, checked on tiny tensors (``harness check`` and the contract tests).

Every merge keeps each name, shape and dtype, is finite and deterministic, leaves its inputs
unchanged, gives its one checkpoint back (``identity_on_one``) and, declaring ``interpolates``,
the base at 0 and the final checkpoint at 1. Merged across tasks (``over=tasks``, the form the
merge-method ranking runs; a ``PooledMerge`` is checked in that form too), the ingredients are
exchangeable, so the result must also

- change when any one ingredient changes (a merge that returns its first input, or ignores one,
  fails) unless it says why not in ``drops_ingredients`` (greedy soup keeps only the
  ingredients that help);
- not depend on the order they come in (the harness passes them in task-name order, an order
  with no meaning); ``harness.api.canonical_order`` sorts them as the built-ins do;
- with k copies of one fine-tune, give that fine-tune back where it declares
  ``identity_on_copies``.

The result is held to the run's own rules (``harness.weights.checked_merge``, ``checked_stats``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, cast

from harness.api import Merge, Merged, PooledMerge
from harness.contracts import ContractError, _variant
from harness.weights import checked_merge, checked_stats

if TYPE_CHECKING:  # torch is heavy; imported where a check runs a merge
    import torch


def tensors(seed: int) -> dict[str, torch.Tensor]:
    """Tiny weights: two float32 tensors and a bfloat16 one (a merge keeps each dtype)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(6, 4, generator=g), "b": torch.randn(4, generator=g),
            "h": torch.randn(3, 5, generator=g).to(torch.bfloat16)}


def _score(candidate: dict[str, torch.Tensor]) -> float:
    """A stand-in for the held-out score a run gives merges that ask for one."""
    return -float(sum((v.float() - 1).abs().sum() for v in candidate.values()))


def merged(merge: Merge, base: dict[str, Any], checkpoints: list[dict[str, Any]]
           ) -> dict[str, Any]:
    """The merge's result, held to the run's rules (``checked_merge``: every base name, a
    tensor of its shape; ``checked_stats``) and to its dtype, all finite."""
    variant = _variant(merge=merge)
    out = merge.merge(base, checkpoints, score=_score) if merge.scored_by() is not None \
        else merge.merge(base, checkpoints)
    if isinstance(out, Merged):
        checked_stats(variant, out.stats)
        out = out.tensors
    checked_merge(variant, base, out)
    for key, ref in base.items():
        value = out[key]
        if value.dtype != ref.dtype:
            raise ContractError(f"returned dtype {value.dtype} for {key!r}, expected "
                                f"{ref.dtype}; return each base tensor's dtype")
        if not bool(value.float().isfinite().all()):
            raise ContractError(f"returned NaN or inf for {key!r}")
    return dict(out)


def _unchanged(given: dict[str, Any], seed: int, what: str) -> None:
    fresh = tensors(seed)
    changed = sorted(set(given) ^ set(fresh)) or sorted(
        k for k in fresh if not (given[k].dtype == fresh[k].dtype and given[k].equal(fresh[k])))
    if changed:
        raise ContractError(f"modified its input {what!r} in place (tensor {changed[0]!r}); "
                            "leave the inputs unchanged: compute into new tensors")


def _differs(got: dict[str, Any], want: dict[str, Any]) -> str | None:
    """The first tensor where ``got`` is not ``want`` within a tolerance of its dtype."""
    import torch

    for key, ref in want.items():
        tol = max(1e-5, float(torch.finfo(ref.dtype).eps))
        if not torch.allclose(got[key].float(), ref.float(), rtol=tol, atol=tol):
            return key
    return None


def _same(got: dict[str, Any], want: dict[str, Any], why: str) -> None:
    key = _differs(got, want)
    if key is not None:
        raise ContractError(f"{why} (tensor {key!r})")


def check_merge(merge: Merge, at_defaults: bool = True) -> None:
    """Ingredients declared; the result keeps every name, shape and dtype, is finite and
    deterministic; the inputs are left unchanged; one checkpoint gives it back
    (``identity_on_one``); with every other parameter at its default (``at_defaults``),
    ``interpolates`` at 0 gives the base and at 1 the final checkpoint; and across tasks, the
    rules of exchangeable ingredients (``check_pooled``)."""
    over, runs = merge.ingredients()
    if over not in ("stages", "seeds", "both", "tasks") or not isinstance(runs, int) or runs < 1:
        raise ContractError(f"ingredients() returned {(over, runs)!r}; expected (stages, seeds, "
                            "both or tasks, a run count >= 1)")
    base, a, b = tensors(0), tensors(1), tensors(2)
    out = merged(merge, base, [a, b])
    for given, seed, what in ((base, 0, "base"), (a, 1, "checkpoints[0]"),
                              (b, 2, "checkpoints[1]")):
        _unchanged(given, seed, what)
    again = merged(merge, tensors(0), [tensors(1), tensors(2)])
    changed = sorted(k for k in out if not out[k].equal(again[k]))
    if changed:
        raise ContractError(f"two calls on the same inputs gave different {changed[0]!r}; a "
                            "merge is deterministic (seed its randomness from a parameter)")
    if merge.identity_on_one:
        _same(merged(merge, tensors(0), [tensors(1)]), tensors(1), "with one checkpoint it does "
              "not return that checkpoint; declare identity_on_one = False if that is intended")
    param = merge.interpolates
    if param and at_defaults:
        for value, want, end in ((0.0, base, "the base"), (1.0, b, "the final checkpoint")):
            try:
                endpoint = dataclasses.replace(cast(Any, merge), **{param: value})
            except (TypeError, ValueError) as err:
                raise ContractError(f"declares interpolates={param!r} but {param}={value:g} is "
                                    f"refused: {err}") from None
            _same(merged(endpoint, tensors(0), [tensors(1), tensors(2)]), want,
                  f"declares interpolates={param!r}, but {param}={value:g} does not give {end}")
    pooled = across_tasks(merge)
    if pooled is not None:
        check_pooled(pooled, "" if pooled is merge else "with over=tasks, ")


def across_tasks(merge: Merge) -> Merge | None:
    """The merge as the ranking runs it (its ingredients one fine-tune per task): itself when
    it merges over tasks, a ``PooledMerge`` with ``over=tasks`` otherwise (None where that
    parameter set does not build, e.g. SLERP between stage checkpoints)."""
    if merge.ingredients()[0] == "tasks":
        return merge
    if not isinstance(merge, PooledMerge):
        return None
    try:
        return cast(Merge, dataclasses.replace(merge, over="tasks"))
    except (TypeError, ValueError):
        return None


def check_pooled(merge: Merge, where: str = "") -> None:
    """Three exchangeable ingredients: each one counts (unless ``drops_ingredients`` says why
    not), their order does not, and three copies of one give it back where
    ``identity_on_copies``. ``where`` starts each message (e.g. "with over=tasks, ")."""
    seeds = [1, 2, 3]
    out = merged(merge, tensors(0), [tensors(s) for s in seeds])
    if not merge.drops_ingredients:
        for i in range(len(seeds)):
            swapped = [tensors(7 if j == i else s) for j, s in enumerate(seeds)]
            if _differs(merged(merge, tensors(0), swapped), out) is None:
                raise ContractError(
                    f"{where}its result did not change when "
                    f"ingredient {i + 1} of {len(seeds)} changed (a merge that returns one "
                    "input, or ignores one); use every ingredient, or say why not in "
                    "drops_ingredients")
    for order in ([3, 1, 2], [2, 3, 1]):
        key = _differs(merged(merge, tensors(0), [tensors(s) for s in order]), out)
        if key is not None:
            raise ContractError(
                f"{where}its result depends on the order of "
                f"its ingredients (tensor {key!r} differs when they are reordered); tasks come "
                "in an order with no meaning: combine them symmetrically, e.g. in "
                "harness.api.canonical_order")
    if merge.identity_on_copies:
        _same(merged(merge, tensors(0), [tensors(1)] * 3), tensors(1),
              f"{where}three copies of one ingredient do not "
              "give it back; declare identity_on_copies = False if that is intended")

