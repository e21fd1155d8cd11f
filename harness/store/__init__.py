"""The results store: SQLite records (``database``, ``queries``, ``schema``) beside a
content-addressed artifact folder (``artifacts``); ``records`` has the typed records and the
interfaces (``RunStore``, ``ResultsReader``) the rest of the harness codes against."""

from harness.store.artifacts import Artifacts
from harness.store.database import Store
from harness.store.files import atomic_write, atomic_write_text

__all__ = ["Artifacts", "Store", "atomic_write", "atomic_write_text"]
