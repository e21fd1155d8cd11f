"""Where a run's wall time goes: seconds per stage (training, embedding, scoring, ...).

Stages nest (a training run happens inside a variant's embedding pass, a merge's held-out
candidates are embedded inside its merge); each second is charged to the innermost stage open
at the time, so the stages add up to the time they cover. One clock per process: under Ray each
worker keeps its own, and the driver reports only what it ran itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

#: the stages in the order they are reported
STAGES = ("audit", "loading", "training", "merging", "held-out scoring", "oracle scoring",
          "embedding",
          "scoring", "analysis", "report")


class Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._open: list[str] = []
        self._since = time.perf_counter()

    def reset(self) -> None:
        self.seconds, self._open, self._since = {}, [], time.perf_counter()

    def _charge(self) -> None:
        now = time.perf_counter()
        if self._open:
            name = self._open[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - self._since
        self._since = now

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._charge()
        self._open.append(name)
        try:
            yield
        finally:
            self._charge()
            self._open.pop()

    def line(self, total: float) -> str:
        """``time: 123 s; training 40 s (33%), ...``: the stages that took any time, and the
        rest of ``total`` as ``other``."""
        order = [s for s in STAGES if s in self.seconds] + \
            sorted(s for s in self.seconds if s not in STAGES)
        parts = [(s, self.seconds[s]) for s in order]
        parts.append(("other", max(0.0, total - sum(self.seconds.values()))))
        shares = ", ".join(f"{s} {v:.0f} s ({100 * v / total:.0f}%)" for s, v in parts
                           if total > 0 and v >= 0.5)
        return f"time: {total:.0f} s" + (f"; {shares}" if shares else "")


CLOCK = Clock()
stage = CLOCK.stage
