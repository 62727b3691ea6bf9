"""The LeadOps project package; its release is `__version__` (semantic versioning, docs/CHANGELOG.md)."""

__version__ = "0.1.0"
