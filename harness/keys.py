"""Every content key in one place: what a stored thing is keyed by decides when it is reused.

A key is a hash of the identities (name, version, parameters) of the components that made the
thing, the keys of what it was made from, the profile and the seeds. Changing any formula here
changes the keys of existing stores, and every stored result would then be recomputed: the
formulas are frozen (``tests/test_store_v1.py`` checks them against a store written by an
earlier harness).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

from harness.component import plugin_call
from harness.leaks import RULE
from harness.params import params_of

if TYPE_CHECKING:
    from harness.api import Adapter, Encoder, Merge, Metric, Profile, Task


def content_hash(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def identity(obj: Any) -> dict[str, Any]:
    """What a component contributes to a content hash. A parameter in ``added_params`` (of the
    class or a base) is left out while it holds its default, so adding it kept the keys."""
    added = {n for c in type(obj).__mro__ for n in getattr(c, "added_params", ())}
    params = params_of(obj)
    if added:
        defaults = {f.name: f.default for f in dataclasses.fields(obj)} \
            if dataclasses.is_dataclass(obj) else {}
        params = {k: v for k, v in params.items()
                  if k not in added or k not in defaults or v != defaults[k]}
    return {"name": obj.name, "version": str(obj.version), "params": params}


def seed_of(*parts: Any) -> int:
    """A 48-bit seed drawn from ``parts`` (for random streams that must not depend on order)."""
    return int(content_hash(*parts)[:12], 16)


def sample_seed(seed: int, *parts: str) -> int:
    """The seed of one sample stream (eval, train, valid, a shuffle) of one task."""
    return seed_of("rng", seed, *parts)


def eval_key(task: Task, profile: Profile, seed: int) -> str:
    """The key of a task's evaluation sample."""
    return content_hash("eval", identity(task), profile.eval_size, seed)


#: the version of ``samples.fit_sample``'s draw, in its key: a change re-embeds the fit samples
FIT_SAMPLE = 1


def fit_key(task: Task, profile: Profile, seed: int, rule: int) -> str:
    """The key of a task's fit sample (``samples.fit_sample``: part of its train sample, drawn
    under leak rule ``rule``)."""
    return content_hash("fit", FIT_SAMPLE, rule, identity(task), profile.train_size,
                        profile.eval_size, seed)


def fit_embedding_key(variant: Any, task: Task, plan: Any) -> str:
    """Where a variant's embeddings of a train task's fit sample are stored."""
    return embedding_key(variant.key, fit_key(task, plan.profile, plan.seed, RULE))


#: the version of ``samples.claim_sample``'s draw, in its key: a change re-embeds those samples
CLAIM_SAMPLE = 1


def claim_key(task: Task, profile: Profile, seed: int) -> str:
    """The key of a compositional task's larger sample for claim 1 (``samples.claim_sample``:
    ``Profile.claim_rows`` sequences embedded by the base models of pretrained encoders)."""
    return content_hash("claim", CLAIM_SAMPLE, identity(task), profile.claim_rows, seed)


def claim_values_key(variant: str, claim: str, metric: str) -> str:
    """Where a base model's per-row values of a metric (its label) on a claim sample
    (``claim_key``) are stored: an (n, 1) array beside the embeddings, which the report's
    paired bootstrap reads."""
    return content_hash("claim-rows", variant, claim, metric)


def pool_key(eval_keys: list[str]) -> str:
    """The key of a run's evaluation pool (its tasks' eval samples, in order)."""
    return content_hash("pool", eval_keys)


def audit_key(tasks: list[Task], seed: int, draws: int, method: int) -> str:
    """The key of a task audit (``harness.audit``): its tasks, seed, draws and method."""
    return content_hash("audit", [identity(t) for t in tasks], seed, draws, method)


def encoder_key(encoder: Encoder) -> str:
    """One key per distinct encoder (a backbone load)."""
    return content_hash(identity(encoder))


def base_key(encoder: Encoder) -> str:
    """The content key of an encoder's base variant (no adapter, no merge)."""
    return content_hash("variant", identity(encoder), None, None)


#: Profile fields that do not change what a training run computes (added after keys froze)
NOT_TRAINING = ("audit_draws", "seeds", "efficient_seeds", "held_out", "replicates",
                "claim_rows", "oracle")


def profile_fields(profile: Profile) -> dict[str, Any]:
    """What of a profile a training run's key covers."""
    return {k: v for k, v in dataclasses.asdict(profile).items() if k not in NOT_TRAINING}


def train_key(encoder: Encoder, adapter: Adapter, task: Task, seed: int, eval_seed: int,
              profile: Profile, rule: int | None = None) -> str:
    """The content key of one training run (its checkpoints are stored under it). ``rule``:
    the leak rule that drew its train and validation samples, given only where it draws other
    sequences than the first rule did (``samples.rule_changes``), so that the keys of runs it
    leaves alone stay what they were."""
    parts: list[Any] = ["train", identity(encoder), identity(adapter), identity(task), seed,
                        eval_seed, profile_fields(profile)]
    return content_hash(*parts, *(["rule", rule] if rule else []))


def scoring(merge: Merge | None, profile: Profile | None) -> list[Any]:
    """What a variant key adds for a merge that scores candidates (``Merge.scored_by``) on a
    held-out sample of another size than the eval sample's (``Profile.held_out``): nothing
    otherwise, so keys made before that field stay what they were."""
    if merge is None or profile is None or not profile.held_out:
        return []
    with plugin_call(f"merge {merge.name!r}: scored_by()"):
        scored = merge.scored_by()
    if scored is None:
        return []
    return ["held_out", profile.held_out]


def variant_key(encoder: Encoder, train: str, merge: Merge | None,
                profile: Profile | None = None) -> str:
    """A trained variant: its first training run's key and its merge (None: unmerged)."""
    return content_hash("variant", identity(encoder), train,
                        identity(merge) if merge else None, *scoring(merge, profile))


def cross_key(encoder: Encoder, trains: list[str], merge: Merge,
              profile: Profile | None = None) -> str:
    """A cross-task merge (``over=tasks``): the keys of every run it merges, and the merge."""
    return content_hash("variant", identity(encoder), "tasks", list(trains), identity(merge),
                        *scoring(merge, profile))


def cell_key(variant: str, eval_sample: str) -> str:
    return content_hash("cell", variant, eval_sample)


def metric_key(metric: Metric) -> str:
    return content_hash(identity(metric))


def embedding_key(variant: str, eval_sample: str) -> str:
    """The content key of a variant's embeddings of an eval sample (``eval_key``)."""
    return content_hash("emb", variant, eval_sample)


def metric_seed(eval_sample: str, metric: str) -> int:
    """A metric's random stream on one eval sample: the same for every variant (paired
    comparisons), so equal embeddings get equal scores."""
    return seed_of(eval_sample, metric)


def scorer_seed(variant: str) -> int:
    """The random stream of a merge's held-out scorer."""
    return seed_of("score", variant)


def analysis_seed(variant: str, pool: str) -> int:
    return int(content_hash("analysis", variant, pool)[:8], 16)


def weights_key(encoder: Encoder, base: dict[str, Any], applied: dict[str, Any]) -> str:
    """The content key of an encoder's weights with ``applied`` loaded over ``base``: its
    identity plus the bytes of every applied tensor that differs from the base one. Equal
    weights get equal keys whichever merge made them; the base model's key has no tensors."""
    import torch

    digest = hashlib.sha256(base_key(encoder).encode())
    for name in sorted(applied):
        tensor = applied[name].detach().cpu().contiguous()
        if torch.equal(tensor, base[name]):
            continue
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return "weights-" + digest.hexdigest()[:20]
