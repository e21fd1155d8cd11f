"""What the store holds, as typed records, and the two interfaces the rest of the harness sees:
``RunStore`` (what a runner reads and writes while it computes; the SQLite store and a Ray
worker's recorder both implement it) and ``ResultsReader`` (the named reads the report and
export are built on). No caller outside ``harness.store`` writes SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

#: (metric key, metric label, value, note, higher is better): one metric's score of a cell
ScoreRow = tuple[str, str, float, str, bool]
#: (profile, eval seed, run id): where a score or failure was computed
Where = tuple[str, int, int]


@dataclass(frozen=True)
class VariantRecord:
    """One variant as stored: labels for people, identities for machines, declared roles."""

    key: str
    encoder: str  # the encoder's label (``name:k=v`` of its non-default parameters)
    family: str  # the encoder's family: non-llm | llm
    adapter: str  # the adapter's label; the reference's name for a base model
    train_task: str | None
    seed: int | None
    merge: str  # the merge's label; the reference's name for an unmerged variant
    group: str  # the leaderboard's family row
    profile: str
    #: identity (name, version, params) of each component, the profile of a trained variant
    info: dict[str, Any] = field(default_factory=dict)
    #: what the components declared about themselves (``plan.roles_of``); empty in a store
    #: written before roles were stored until it is backfilled
    roles: dict[str, Any] = field(default_factory=dict)

    @property
    def precision(self) -> str:
        """The number format its encoder ran in (``Encoder.number_format``); for a variant
        stored before that was recorded, its encoder's ``precision`` parameter (``auto``:
        not known) or ``fp32`` for an encoder without one."""
        if "precision" in self.info:
            return str(self.info["precision"])
        params = (self.info.get("encoder") or {}).get("params") or {}
        return str(params.get("precision") or "fp32")


@dataclass(frozen=True)
class ScoreRecord:
    cell: str
    metric_key: str
    variant: str
    task: str
    metric: str  # the metric's label
    value: float  # NaN where undefined (see note)
    note: str
    profile: str
    eval_seed: int
    run_id: int
    higher_is_better: bool | None  # None: not recorded (a store from before directions)


@dataclass(frozen=True)
class AnalysisRecord:
    variant: str
    pool: str
    tasks: list[str]
    profile: str
    eval_seed: int
    run_id: int
    kind: str  # cka | encoded | fit
    name: str
    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class FailureRecord:
    cell: str
    variant: str
    task: str
    error: str  # first line: the message; then the traceback
    profile: str
    eval_seed: int
    run_id: int


@dataclass(frozen=True)
class RunRecord:
    id: int
    started: str | None
    finished: str | None
    argv: list[str] | None
    profile: str
    seeds: list[int] | None
    git_commit: str | None
    packages: dict[str, str]


@dataclass(frozen=True)
class EvalSampleRecord:
    """A task's evaluation sample as a run drew it, with what the task declared about itself:
    what the leaderboard needs of a task, so that it renders without the task installed."""

    key: str  # ``keys.eval_key``
    task: str
    profile: str
    eval_seed: int
    run_id: int
    #: identity, classes, compositional, trains_by_default
    info: dict[str, Any]
    sequences: list[tuple[int, ...]]
    labels: list[int]

    @property
    def compositional(self) -> bool:
        return bool(self.info.get("compositional"))


class ArtifactStore(Protocol):
    def load_embeddings(self, key: str, rows: int) -> np.ndarray | None: ...
    def save_embeddings(self, key: str, X: np.ndarray) -> None: ...
    def link_embeddings(self, key: str, to: str, X: np.ndarray) -> None: ...
    def load_checkpoints(self, key: str) -> list[dict[str, Any]] | None: ...
    def save_checkpoints(self, key: str, checkpoints: list[dict[str, Any]]) -> None: ...
    def save_merge_stats(self, key: str, stats: dict[str, float] | None) -> None: ...
    def load_merge_stats(self, key: str) -> tuple[dict[str, float] | None] | None: ...


class RunStore(ArtifactStore, Protocol):
    """What a ``Runner`` needs of a store."""

    def put_variant(self, record: VariantRecord) -> None: ...
    def stored_metrics(self, cell: str) -> set[str]: ...
    def put_scores(self, cell: str, variant: str, task: str, where: Where,
                   scores: list[ScoreRow], samples: dict[str, np.ndarray] | None = None
                   ) -> None: ...
    def put_failure(self, cell: str, variant: str, task: str, error: str,
                    where: Where) -> None: ...
    def put_merge_stats(self, variant: str, stats: dict[str, float]) -> None: ...


class ResultsReader(Protocol):
    """The reads the leaderboard and export are made of."""

    def latest_run(self, profile: str | None = None) -> RunRecord | None: ...
    def runs(self) -> list[RunRecord]: ...
    def latest_eval_seed(self, profile: str) -> int | None: ...
    def variants(self) -> dict[str, VariantRecord]: ...
    def scores(self, profile: str | None = None, eval_seed: int | None = None
               ) -> list[ScoreRecord]: ...
    def samples(self, cells: set[str] | None = None) -> dict[tuple[str, str], np.ndarray]: ...
    def analyses(self, profile: str | None = None, eval_seed: int | None = None
                 ) -> list[AnalysisRecord]: ...
    def merge_stats(self) -> dict[str, dict[str, float]]: ...
    def failures(self, profile: str, eval_seed: int) -> list[FailureRecord]: ...
    def eval_samples(self, profile: str, eval_seed: int) -> dict[str, EvalSampleRecord]: ...
    def audit(self, tasks: list[str], eval_seed: int) -> dict[str, Any] | None: ...
    def load_embeddings(self, key: str, rows: int) -> np.ndarray | None: ...
