"""The one-time backfill of a store written before the harness stored what its components
declare: each variant's roles, each score's direction and each task's eval sample with its
flags. Only the installed plugins can tell these, so the upgrade of an old store (``harness.store
.schema``) marks it, and the first command that opens it with a registry fills them in; from then
on the leaderboard renders from the store alone. Nothing is recomputed."""

from __future__ import annotations

from typing import Any

from harness.api import PROFILES
from harness.params import parse_spec
from harness.plan import roles_of
from harness.registry import Registry
from harness.samples import eval_sample_record
from harness.store import Store


def _cls(registry: Registry, kind: str, identity: dict[str, Any] | None) -> type | None:
    if not identity:
        return None
    return registry.components[kind].get(identity.get("name", ""))


def backfill(store: Store, registry: Registry) -> list[str]:
    """Fill what an upgraded store lacks from the installed plugins; returns one warning per
    kind of fact that could not be filled (its plugin is not installed), empty when done."""
    if not store.backfill_pending():
        return []
    missing: dict[str, None] = {}  # what is not installed, in the order met
    roles: dict[str, dict[str, Any]] = {}
    for key, info in store.roleless_variants().items():
        found = {}
        for kind, field in (("encoders", "encoder"), ("adapters", "adapter"),
                            ("merges", "merge")):
            found[field] = _cls(registry, kind, info.get(field))
            if info.get(field) and found[field] is None:
                missing[f"{field} {info[field].get('name')}"] = None
        # what the installed components tell; a missing one's roles are left at their defaults,
        # marked partial, and filled once it is installed
        roles[key] = roles_of(found["encoder"], found["adapter"], found["merge"],
                              (info.get("merge") or {}).get("params", {}))
        if any(info.get(f) and found[f] is None for f in found):
            roles[key].update(partial=True,
                              merge=(info.get("merge") or {}).get("name") or None)
    directions = {}
    for metric in store.undirected_metrics():
        cls = registry.components["metrics"].get(parse_spec(metric)[0])
        if cls is None:
            missing[f"metric {metric}"] = None
        else:
            directions[metric] = bool(cls.higher_is_better)
    samples = []
    for task_name, profile, seed, run_id in store.unsampled_tasks():
        cls = registry.components["tasks"].get(task_name)
        if cls is None or profile not in PROFILES:
            missing[f"task {task_name}"] = None
        else:
            samples.append(eval_sample_record(cls(), profile, int(seed), int(run_id)))
    store.backfill(roles, directions, samples, done=not missing)
    if not missing:
        return []
    names = list(missing)
    return [f"this store was written by an earlier harness and names components that are not "
            f"installed ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); the "
            "leaderboard shows their results without what they declare about themselves "
            "(install them and run any harness command on the store to fill it in)"]
