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


class FleetMember:
    """One simulated worker: its signed client and the version it runs."""

    def __init__(self, signed, version: str) -> None:
        self.signed = signed
        self.worker_id = signed.worker_id
        self.version = version

    def check(self) -> dict:
        response = self.signed.get("/api/v1/updates/check", query=f"version={self.version}")
        assert response.status_code == 200, response.content
        return response.json()

    def report(self, version: str, stage: str, ok: bool = True, details: dict | None = None):
        body = {"version": version, "stage": stage, "ok": ok}
        if details is not None:
            body["details"] = details
        response = self.signed.post("/api/v1/updates/report", body)
        assert response.status_code == 200, response.content
        return response

    def update(self) -> dict:
        """Check, and 'install' what the portal assigns (reporting each stage), like the reference worker."""
        answer = self.check()
        target = answer["target"]
        if target is not None:
            self.report(target["version"], "downloaded")
            self.report(target["version"], "installed")
            self.report(target["version"], "self_test")
            self.version = target["version"]
        return answer

    def heartbeat(self, self_test=None):
        body = {"version": self.version, "status": "idle", "running_jobs": 0}
        if self_test is not None:
            body["self_test"] = self_test
        response = self.signed.post("/api/v1/heartbeat", body)
        assert response.status_code == 200, response.content


@pytest.fixture
def fleet(make_signed):
    """fleet(10) -> ten workers w-01..w-10 on channel stable, running `version` (default 1.0.0)."""

    def factory(count: int = 10, *, version: str = "1.0.0", channel: str = "stable"):
        return [FleetMember(make_signed(f"w-{index:02d}", channel=channel), version)
                for index in range(1, count + 1)]

    return factory


@pytest.fixture
def stable_on(publish):
    """stable_on("1.0.0") -> the channel stable with that release current (a finished rollout)."""
    from releases_app.services import rollout_promote, rollout_start

    def factory(version: str = "1.0.0"):
        publish(version)
        rollout_start(version=version, channel_name="stable", steps=[{"percent": 100}], actor="tests")
        rollout_promote(channel_name="stable", actor="tests")

    return factory
