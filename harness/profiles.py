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

    def __post_init__(self) -> None:
        for attr in ("train_size", "eval_size", "epochs", "batch_size", "stages", "audit_draws",
                     "seeds"):
            if getattr(self, attr) < 1:
                raise HarnessError(f"profile {self.name}: {attr} must be >= 1")


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", train_size=48, eval_size=40, epochs=2, batch_size=16, stages=2,
                     max_train_steps=8, audit_draws=1_000),
    # sized so that `make run` (3 encoders incl. SmolLM2-135M) fits a 2-core CPU
    "quick": Profile("quick", train_size=320, eval_size=100, epochs=2, batch_size=16, stages=3,
                     max_train_steps=40),
    "paper": Profile("paper", train_size=4000, eval_size=1000, epochs=5, batch_size=64,
                     stages=5, max_train_steps=3000, seeds=3),
}
