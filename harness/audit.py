"""The task audit: what else, other than the property a task names, predicts its label.

For any task, built-in or third-party, two things are measured on draws of its own sampler:

- **nuisance AUCs**: how well each simple feature of a sequence (``NUISANCES``: its length,
  magnitude, digits, leading digit and arithmetic shares) predicts the label on its own. The
  predictor is a histogram of the feature (``BINS`` equal-width bins between its 1st and 99th
  percentiles, fitted on four folds and read on the fifth), so a relation need not be monotone
  to count, while bins too coarse to single out exact values keep it from reading the property
  itself off an element (the minimum of an all-squares sequence *is* a square). Out-of-fold
  predictions are scored by ROC AUC, macro-averaged one class against the rest for 3+
  classes, so 0.5 is chance for every task and one bound serves them all. A task names the
  nuisances that *are* its property (``Task.exempt_nuisances``: the odd share for parity);
  those are reported but never held against it.
- **joint AUC**: how well all the counted nuisances *together* predict it, by the same
  cross-validated AUC: the larger of a linear model's and a small tree ensemble's, on the
  features coarsened to the histogram's bins (``harness.audit_joint``), so that each alone may
  stay at chance while a combination (the max's magnitude with the share of multiples of 3)
  still gives the label away. It is held to the same bound.
- **dependence** between every pair of tasks' labels, as Cramér's V on the pooled draws of all
  tasks (drawn the way the shared evaluation pool is), counted on the sequences where both
  labels apply. A pair at or above ``DEPENDENT`` is treated as one skill: a variant trained on
  one of them does not count the other as off-task.

``BOUND`` is what a task should meet; a task above it is flagged in the leaderboard (never
refused), and ``CEILING`` is the most a built-in task may reach where its property makes the
bound impossible (it says why in its docstring).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import audit_joint, keys
from harness.api import HarnessError, Task
from harness.samples import draw

#: the audit's method; part of its stored key (raise it when what is measured changes)
METHOD = 2  # 2: the joint AUC
#: default draws of each task's sampler (an AUC of 0.60 happens by chance on 100 sequences)
DRAWS = 10_000
#: the fewest and the most draws ``harness tasks --audit --draws`` takes: ten times the
#: default is far above any real use (a chance AUC's error is then 0.004), and keeps a typo
#: from drawing without end (every task labels every task's draws)
MIN_DRAWS, MAX_DRAWS = 10, 100_000
#: a task passes when every nuisance it does not exempt, and all of them together, predict its
#: label with AUC <= this
BOUND = 0.55
#: built-in tasks whose property makes BOUND impossible stay at or below this
CEILING = 0.65
#: two tasks' labels with Cramér's V at or above this are dependent (fixed before any verdict
#: was read; the leaderboard's off-task figures leave such tasks out)
DEPENDENT = 0.3
#: equal-width bins of the histogram predictor; cross-validation folds
BINS, FOLDS = 10, 5


def _digits(x: int) -> int:
    return len(str(abs(x))) if abs(x) < 10 ** 18 else int(math.log10(abs(x))) + 1


def _lead(x: int) -> int:
    x = abs(x)
    while x >= 10:
        x //= 10
    return x


def _share(pred: Callable[[int], bool]) -> Callable[[tuple[int, ...]], float]:
    return lambda s: sum(map(pred, s)) / len(s)


#: name -> feature of a (non-empty) sequence of ints; means are over its elements
NUISANCES: dict[str, Callable[[tuple[int, ...]], float]] = {
    "length": lambda s: float(len(s)),
    "min": lambda s: float(min(s)),
    "max": lambda s: float(max(s)),
    "mean": lambda s: float(np.mean(s)),
    "digits": lambda s: float(np.mean([_digits(x) for x in s])),
    "leading-digit": lambda s: float(np.mean([_lead(x) for x in s])),
    "odd-share": _share(lambda x: x % 2 == 1),
    "div3-share": _share(lambda x: x % 3 == 0),
    "div5-share": _share(lambda x: x % 5 == 0),
}


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``scores`` for the boolean ``positive`` (ties count half); NaN where one
    side is empty."""
    from sklearn.metrics import roc_auc_score

    if positive.all() or not positive.any():
        return math.nan
    return float(roc_auc_score(positive, scores))


def folds(n: int, seed: int) -> np.ndarray:
    """Each of ``n`` rows' cross-validation fold (0..FOLDS-1, deterministic in seed)."""
    return np.random.default_rng(seed).permutation(n) % FOLDS


def predictive_auc(feature: np.ndarray, labels: np.ndarray, k: int, seed: int = 0) -> float:
    """Cross-validated AUC of a histogram predictor of ``labels`` (0..k-1) from one feature
    (macro one-vs-rest for k > 2)."""
    n = len(labels)
    fold = folds(n, seed)
    probs = np.zeros((n, k))
    for f in range(FOLDS):
        test, train = fold == f, fold != f
        lo, hi = np.quantile(feature[train], [0.01, 0.99])
        edges = np.unique(np.linspace(lo, hi, BINS + 1)[1:-1])
        bins_train = np.searchsorted(edges, feature[train], side="right")
        bins_test = np.searchsorted(edges, feature[test], side="right")
        counts = np.ones((len(edges) + 1, k))  # Laplace smoothing
        np.add.at(counts, (bins_train, labels[train]), 1)
        probs[test] = (counts / counts.sum(axis=1, keepdims=True))[bins_test]
    classes = [1] if k == 2 else list(range(k))
    return float(np.mean([auc(probs[:, c], labels == c) for c in classes]))


@dataclass
class TaskAudit:
    task: str
    classes: int
    draws: int
    aucs: dict[str, float]
    exempt: list[str]
    bound: float = BOUND
    #: why the task could not be audited ("" when it was)
    error: str = ""
    #: joint model (``audit_joint.MODELS``) -> AUC of all counted nuisances together (empty in
    #: an audit stored before it was measured: METHOD 1)
    joint: dict[str, float] = field(default_factory=dict)

    @property
    def strongest(self) -> tuple[str, float]:
        """The counted nuisance that predicts the label best."""
        counted = {k: v for k, v in self.aucs.items() if k not in self.exempt}
        if not counted:
            return "", math.nan
        name = max(counted, key=lambda k: counted[k])
        return name, counted[name]

    @property
    def joint_best(self) -> tuple[str, float]:
        """The joint model that predicts the label best, and its AUC (("", NaN) if none)."""
        return audit_joint.best(self.joint)

    @property
    def margin(self) -> float:
        """Twice the sampling error of a chance AUC on this many draws (about 0.012 at 10,000,
        0.037 at 1,000): a figure above the bound by less is not evidence of a shortcut."""
        n = max(self.draws, 2)
        return 2 * math.sqrt((n + 1) / 3) / n

    @property
    def passes(self) -> bool:
        """Not flagged: audited, and no counted nuisance, nor all of them together, above the
        bound by more than the margin (the built-in tasks are held to the bound itself, on
        10,000 draws, by a test)."""
        return not self.reason

    @property
    def reason(self) -> str:
        """Why the task is flagged, in words ("" when it passes)."""
        (name, value), (model, joint) = self.strongest, self.joint_best
        limit = self.bound + self.margin
        return (self.error or (f"{name} predicts its label with AUC {value:.2f}"
                               if value > limit else "")
                or (f"the nuisances together predict its label with AUC {joint:.2f} ({model})"
                    if joint > limit else ""))


@dataclass
class Audit:
    tasks: list[TaskAudit]
    #: (task a, task b) -> Cramér's V on the sequences where both apply (a != b)
    dependence: dict[tuple[str, str], float] = field(default_factory=dict)
    #: (task a, task b) -> how many pooled sequences both labels apply to
    overlap: dict[tuple[str, str], int] = field(default_factory=dict)

    def dependent_on(self, task: str) -> list[str]:
        """The tasks whose labels depend on ``task``'s (V >= DEPENDENT)."""
        return sorted(b for (a, b), v in self.dependence.items()
                      if a == task and v >= DEPENDENT)

    def as_dict(self) -> dict[str, Any]:
        return {"bound": BOUND, "dependent_at": DEPENDENT,
                "tasks": [{"task": t.task, "classes": t.classes, "draws": t.draws,
                           "nuisance_auc": t.aucs, "exempt": t.exempt,
                           "strongest": list(t.strongest), "joint_auc": t.joint,
                           "joint": list(t.joint_best), "passes": t.passes,
                           **({"error": t.error} if t.error else {})}
                          for t in self.tasks],
                "dependence": [{"a": a, "b": b, "cramers_v": v,
                                "overlap": self.overlap.get((a, b), 0)}
                               for (a, b), v in sorted(self.dependence.items())]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Audit:
        tasks = [TaskAudit(t["task"], int(t["classes"]), int(t["draws"]),
                           {k: float(v) for k, v in t["nuisance_auc"].items()},
                           list(t["exempt"]), float(data.get("bound", BOUND)),
                           str(t.get("error", "")),
                           {k: float(v) for k, v in t.get("joint_auc", {}).items()})
                 for t in data["tasks"]]
        dep = {(d["a"], d["b"]): float(d["cramers_v"]) for d in data["dependence"]}
        overlap = {(d["a"], d["b"]): int(d["overlap"]) for d in data["dependence"]}
        return cls(tasks, dep, overlap)


def features(seqs: Sequence[tuple[int, ...]]) -> dict[str, np.ndarray]:
    return {name: np.array([f(s) if s else math.nan for s in seqs], dtype=np.float64)
            for name, f in NUISANCES.items()}


def audit_task(task: Task, seqs: list[tuple[int, ...]], seed: int = 0) -> TaskAudit:
    labels = np.array([int(task.label(s) or 0) for s in seqs])
    k = len(task.classes)
    cols = {name: np.nan_to_num(col) for name, col in features(seqs).items()}
    aucs = {name: predictive_auc(col, labels, k, seed) for name, col in cols.items()}
    exempt = [n for n in getattr(task, "exempt_nuisances", ()) if n in NUISANCES]
    joint = audit_joint.joint_aucs([c for n, c in cols.items() if n not in exempt], labels, k,
                                   folds(len(seqs), seed), BINS, seed)
    return TaskAudit(task.name, k, len(seqs), aucs, exempt, joint=joint)


def cramers_v(a: list[int | None], b: list[int | None]) -> tuple[float, int]:
    """Cramér's V of two label lists on the positions where both apply, and how many."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if not pairs:
        return math.nan, 0
    xs = sorted({p[0] for p in pairs})
    ys = sorted({p[1] for p in pairs})
    if len(xs) < 2 or len(ys) < 2:
        return 0.0, len(pairs)  # one label constant where both apply: no information
    table = np.zeros((len(xs), len(ys)))
    for x, y in pairs:
        table[xs.index(x), ys.index(y)] += 1
    n = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / (n * (min(table.shape) - 1))), len(pairs)


def _safe_label(task: Task, seq: tuple[int, ...]) -> int | None:
    try:
        y = task.label(seq)
    except (Exception, SystemExit):  # cannot label another task's sequence: does not apply
        return None
    return int(y) if y is not None and hasattr(y, "__index__") else None


def run_audit(tasks: list[Task], seed: int, draws: int = DRAWS) -> Audit:
    """Audit ``tasks`` on ``draws`` sequences of each one's sampler (deterministic in seed)."""
    samples: dict[str, list[tuple[int, ...]]] = {}
    audits = []
    for t in tasks:
        try:
            samples[t.name] = draw(t, draws, random.Random(keys.sample_seed(seed, "audit",
                                                                            t.name)))
        except HarnessError as err:  # flagged, not refused: its eval sample drew fine
            audits.append(TaskAudit(t.name, len(t.classes), 0, {}, [], error=str(err)))
            continue
        audits.append(audit_task(t, samples[t.name], seed))
    pool = [s for t in tasks for s in samples.get(t.name, [])]
    labels = {t.name: [_safe_label(t, s) for s in pool] for t in tasks}
    dep: dict[tuple[str, str], float] = {}
    overlap: dict[tuple[str, str], int] = {}
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            v, n = cramers_v(labels[a.name], labels[b.name])
            dep[(a.name, b.name)] = dep[(b.name, a.name)] = v
            overlap[(a.name, b.name)] = overlap[(b.name, a.name)] = n
    return Audit(audits, dep, overlap)
