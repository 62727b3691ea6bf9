"""Fixtures of the release tests: artifacts in a temporary media folder, ready releases, a fleet."""

from __future__ import annotations

import io

import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    # Artifacts go through Django's storage API; each test gets its own folder.
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def publish(db):
    """publish("1.0.0") -> a Release self-tested from a real archive (ready unless the archive is bad)."""
    from releases_app.services import release_publish
    from tests.releases_app.builders import tar_artifact

    def factory(version: str, data: bytes | None = None, *, filename: str | None = None, **kwargs):
        data = data if data is not None else tar_artifact(version)
        return release_publish(version=version, fileobj=io.BytesIO(data),
                               filename=filename or f"worker-{version}.tar.gz", actor="tests", **kwargs)

    return factory
