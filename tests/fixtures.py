"""Fixture factories shared by the test packages."""

from __future__ import annotations

from typing import Any

import pytest


def settings_fixture(doc: str, **values: Any) -> Any:
    """A fixture that sets these settings for one test (pytest-django undoes them) and returns them."""

    @pytest.fixture
    def overridden(settings: Any) -> Any:
        for name, value in values.items():
            setattr(settings, name, value)
        return settings

    overridden.__doc__ = doc
    return overridden
