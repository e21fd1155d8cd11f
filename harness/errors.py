"""The two exceptions plugins and the core share (re-exported by ``harness.api``)."""

from __future__ import annotations


class HarnessError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


class MetricUndefined(Exception):
    """Raised by a metric when its value is undefined here; the cell stores NaN with this reason."""
