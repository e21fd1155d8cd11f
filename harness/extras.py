"""The samples a variant embeds beside the run's evaluation pool, for analyses that score more
than its cells: each fine-tune's and its base's *fit sample* (``harness.learnability``) and
the base models' larger sample of each compositional task for claim 1
(``harness.claim_sample``).

The runner embeds them in the variant's pass (``harness.run``) and stores each under
``keys.embedding_key(variant, sample key)``, so that a store from before a kind of extra sample
gets only those embeddings on its next run, no cell recomputed. Each kind is embedded in a call
of its own, so that one kind's embeddings do not depend on whether the other is there (a
backbone's batches are grouped by length over the whole call).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import keys
from harness.api import Sequence, Task
from harness.claim_sample import claim_tasks
from harness.leaks import RULE
from harness.learnability import fit_tasks
from harness.plan import Plan
from harness.samples import claim_sample, fit_sample


@dataclass(frozen=True)
class Extra:
    """One sample a variant embeds beyond its cells."""

    kind: str  # fit | claim
    key: str  # the sample's content key (``keys.fit_key``, ``keys.claim_key``)
    task: Task
    seqs: list[Sequence]


def extra_samples(plan: Plan) -> dict[str, list[Extra]]:
    """Variant key -> the extra samples it embeds, of the whole plan (a Ray job's part of the
    plan passes this to its ``Runner``: a base's job holds no fine-tune), each drawn once."""
    drawn: dict[tuple[str, str], Extra] = {}

    def extra(kind: str, task: Task) -> Extra:
        if (kind, task.name) not in drawn:
            if kind == "fit":
                key = keys.fit_key(task, plan.profile, plan.seed, RULE)
                seqs = fit_sample(task, plan.profile, plan.seed)
            else:
                key = keys.claim_key(task, plan.profile, plan.seed)
                seqs = claim_sample(task, plan.profile, plan.seed)
            drawn[(kind, task.name)] = Extra(kind, key, task, seqs)
        return drawn[(kind, task.name)]

    out: dict[str, list[Extra]] = {}
    for kind, found in (("fit", fit_tasks(plan)), ("claim", claim_tasks(plan))):
        for variant, tasks in found.items():
            out.setdefault(variant, []).extend(extra(kind, t) for t in tasks)
    return out
