"""harness: how adapting and merging text-embedding backbones changes embedding geometry."""

from harness.hookspecs import hookimpl

__all__ = ["hookimpl"]
__version__ = "0.1.0"
