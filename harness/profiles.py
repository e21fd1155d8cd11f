"""The sizes of a run (re-exported by ``harness.api``)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError


@dataclass(frozen=True)
class Profile:
    """The sizes of a run. Adapters and the runner read these; plugins may read them too."""

    name: str
    train_size: int  # sequences per train task
    eval_size: int  # sequences per eval task (the task's share of the shared pool)
    epochs: int
    batch_size: int
    stages: int  # checkpoints emitted per training run
    max_train_steps: int  # cap on optimiser steps, whatever epochs say
    #: draws of each task's sampler for the task audit (``harness.audit``)
    audit_draws: int = 10_000
    #: training seeds per variant when ``--seeds`` is not given
    seeds: int = 1
    #: training seeds of a parameter-efficient adapter (``Adapter.parameter_efficient``, e.g.
    #: LoRA) when ``--seeds`` is not given; 0: ``seeds``. Claim 2 compares LLM and non-LLM
    #: encoders adapted this way, so both sides get the same count.
    efficient_seeds: int = 0
    #: sequences per merged task that score a merge's candidates (``Merge.scored_by``: λ,
    #: density, greedy soup's picks), drawn like the validation sample; 0: ``eval_size``
    held_out: int = 0
    #: draws of a random merge (``Merge.replicates``) left at its default seed; 0:
    #: ``harness.api.REPLICATES``
    replicates: int = 0
    #: sequences per compositional eval task that the base models of pretrained encoders are
    #: also scored on for claim 1 (``harness.claim_sample``): base models have no training
    #: seeds, so only rows power that comparison, and more eval rows for every variant would
    #: multiply the grid's embedding cost. 0 (or not above ``eval_size``): nothing extra
    claim_rows: int = 0
    #: score a tuned cross-task merge's candidates on the eval samples too (``harness.oracle``:
    #: the ranking's oracle column); a pass per candidate over the merged tasks' eval samples
    oracle: bool = True

    @property
    def claim_extra(self) -> bool:
        """Whether the base models embed claim 1's larger sample (``claim_rows``)."""
        return self.claim_rows > self.eval_size

    @property
    def held_out_size(self) -> int:
        return self.held_out or self.eval_size

    def seeds_for(self, adapter: object, given: int | None = None) -> int:
        """Training seeds of one adapter's runs: ``given`` (``--seeds``) if set, else the
        profile's default for that kind of adapter."""
        if given is not None:
            return given
        efficient = bool(getattr(adapter, "parameter_efficient", False))
        return self.efficient_seeds if efficient and self.efficient_seeds else self.seeds

    def __post_init__(self) -> None:
        for attr in ("train_size", "eval_size", "epochs", "batch_size", "stages", "audit_draws",
                     "seeds"):
            if getattr(self, attr) < 1:
                raise HarnessError(f"profile {self.name}: {attr} must be >= 1")
        for attr in ("efficient_seeds", "held_out", "replicates", "claim_rows"):
            if getattr(self, attr) < 0:
                raise HarnessError(f"profile {self.name}: {attr} must be >= 0")


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", train_size=48, eval_size=40, epochs=2, batch_size=16, stages=2,
                     max_train_steps=8, audit_draws=1_000),
    # sized so that `make run` (3 encoders incl. SmolLM2-135M) fits a 2-core CPU
    # held_out and replicates: what lets the cross-task track of `make run` fit its budget
    # (one DARE draw a seed since #32's stage SLERP: the FLOP floor within 2.5x the grid before);
    # two seeds, so that every interval holds between-run variance (a t over two runs: wide);
    # claim_rows: 600 rows take claim 1's detectable difference from 0.115 (100 rows) to about
    # 0.115 * sqrt(100 / 600) = 0.047, below power.TARGET (0.05)
    "quick": Profile("quick", train_size=320, eval_size=100, epochs=2, batch_size=16, stages=3,
                     max_train_steps=40, seeds=2, held_out=50, replicates=1, claim_rows=600,
                     oracle=False),
    "paper": Profile("paper", train_size=4000, eval_size=1000, epochs=5, batch_size=64,
                     stages=5, max_train_steps=3000, seeds=3),
}
