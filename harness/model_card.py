"""The model card (``README.md``) of a variant exported by ``harness export-model``: where its
weights come from (base model, adapter, train tasks and seeds, merge and the values it chose,
precision, harness version and source), how a sequence enters it, and its scores on the run's
eval samples with 95% intervals from the store (the leaderboard's paired bootstrap)."""

from __future__ import annotations

import math
from importlib import metadata

from harness.api import render
from harness.params import label, params_of
from harness.plan import Plan, Variant
from harness.report.stored import scored
from harness.report.tables import source_hash
from harness.store import Store

#: what the card says about a sequence's text (``harness.api.render``)
INPUT = ("A sequence of integers enters as its text: the integers in order, in decimal, "
         "separated by `, ` (`harness.api.render`: `{example}`).")


def _version() -> str:
    try:
        return metadata.version("numgeo-harness")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def lineage(store: Store, plan: Plan, variant: Variant) -> list[str]:
    """Bullet lines: base model, adapter, train tasks and seeds, merge and its chosen values,
    precision, harness version and source."""
    tasks = variant.merged_names or ([variant.train_task.name] if variant.train_task else [])
    seeds = sorted({seed for seed, _ in variant.runs})
    out = [f"- base model: `{label(variant.encoder)}` ({variant.encoder.family}; "
           f"{variant.encoder.number_format()})",
           f"- adapter: `{label(variant.adapter)}` ({_params(variant.adapter)})" if variant.adapter
           else "- adapter: none (the base model's own weights)"]
    if variant.adapter is not None:
        out.append(f"- trained on: {', '.join(f'`{t}`' for t in tasks)}; training seed(s) "
                   f"{', '.join(map(str, seeds))}; profile `{plan.profile.name}` (its train "
                   f"samples, steps and learning rate), sample seed {plan.seed}")
    if variant.merge is not None:
        out.append(f"- merge: `{label(variant.merge)}` ({_params(variant.merge)})")
        for name, value in sorted(store.merge_stats().get(variant.key, {}).items()):
            out.append(f"  - {name}: {value:.6g}")
    out += [f"- weights: float32 safetensors (the harness computed this variant's embeddings "
            f"as `{variant.encoder.number_format()}` describes; a bfloat16 computation loaded in "
            "float32 differs by rounding)",
            f"- harness {_version()}, source hash `{source_hash()}`, variant key "
            f"`{variant.key}`"]
    return out


def _params(component: object) -> str:
    """Every parameter of a component with its value, defaults included."""
    return ", ".join(f"{k}={v}" for k, v in params_of(component).items()) or "no parameters"


def scores(store: Store, plan: Plan, variant: Variant) -> list[str]:
    """A table: each eval task's stored score of each metric, with its 95% interval."""
    found = scored(store, plan.profile.name, plan.seed, {variant.key})
    metrics = sorted({metric for _, _, metric in found})
    table: dict[str, dict[str, str]] = {}
    for (_, task, metric), s in found.items():
        text = "n/a" if not math.isfinite(s.record.value) else f"{s.record.value:.3f}"
        if s.interval is not None:
            text += f" [{s.interval[0]:.2f}, {s.interval[1]:.2f}]"
        table.setdefault(task, {})[metric] = text
    if not table:
        return ["No scores are stored for this variant."]
    head = "| task | " + " | ".join(metrics) + " |"
    rule = "|---" * (len(metrics) + 1) + "|"
    body = [f"| {task} | " + " | ".join(table[task].get(m, "") for m in metrics) + " |"
            for task in sorted(table)]
    return [head, rule, *body]


def card(store: Store, plan: Plan, variant: Variant, name: str, cosine: float, rows: int
         ) -> str:
    """The card's markdown, with sentence-transformers' front matter."""
    example = render((3, 5, 7, 11))
    lines = ["---", "library_name: sentence-transformers", "pipeline_tag: feature-extraction",
             "tags:", "- sentence-transformers", "- feature-extraction", "- numgeo-harness",
             "---", "", f"# {name}", "",
             "Exported by `harness export-model` from a results store of the numgeo harness "
             "(a benchmark of how adapting and merging an embedding backbone changes the "
             "geometry of its embeddings). Load it offline:", "",
             "```python", "from sentence_transformers import SentenceTransformer",
             "model = SentenceTransformer(\"PATH/TO/THIS/FOLDER\")",
             f"vectors = model.encode([\"{example}\"])", "```", "",
             "## Input", "", INPUT.format(example=example) + " Pooling: "
             f"`{getattr(variant.encoder, 'pooling', 'see the config')}` over the real tokens; "
             "the vectors are not normalised.", "",
             "## Lineage", "", *lineage(store, plan, variant), "",
             "## Equality with the harness", "",
             f"This folder's embeddings of the run's eval samples ({rows} sequences), loaded with "
             "sentence-transformers, against the embeddings the harness stored for the "
             f"variant: smallest cosine {cosine:.6f}.", "",
             f"## Scores (profile `{plan.profile.name}`, eval seed {plan.seed})", "",
             "Each eval task's score of each metric on the store's eval sample, with its 95% "
             "interval (the leaderboard's paired bootstrap of the eval rows: this is one model, "
             "so the interval holds no between-run variance).", "",
             *scores(store, plan, variant), ""]
    return "\n".join(lines)
