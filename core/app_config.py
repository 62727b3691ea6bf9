"""The base of the project's app configs (docs/CONTRIBUTING.md, "Layers, types and where a change goes").

An `apps.py` imports this module, not the class: Django takes the one AppConfig class found in
`apps.py` as the app's config, and an imported base class would count as a second one.
"""

from importlib import import_module

from django.apps import AppConfig


class ProjectAppConfig(AppConfig):
    """Once the registry is ready: registers the app's system checks (`<app>/checks.py`,
    `register()`), then `connect()` wires what the app lends to other apps and signals."""

    def ready(self) -> None:
        import_module(f"{self.name}.checks").register()
        self.connect()

    def connect(self) -> None:
        """Register with other apps and signals (nothing by default)."""
