"""A failing canary, made through the real services and the real worker protocol.

Channel `stable` runs 2.3.0; a rollout of 2.4.0 names `w-canary` as its canary. The canary updates
(check, download, install, self-test reports) and heartbeats 2.4.0, then fails every job it pulls with
`blocked` (its error message and log tail name a phone number) and sends a screenshot of one failure;
`w-stable` on 2.3.0 succeeds its jobs and reports leads with phone numbers. Only the canary's error
rate crosses the rule: one alert, error_rate{worker="w-canary"}.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image

from releases_app.services import release_publish, rollout_promote, rollout_start
from tests.factories import lead, make_jobs, make_provider
from tests.releases_app.builders import tar_artifact

# The portal's address in the alert links, and the repeat interval of the canary's alert settings.
PUBLIC_URL = "https://ops.example.test"
REPEAT_S = 120

CANARY_VERSION = "2.4.0"
STABLE_VERSION = "2.3.0"
# What a lead and a worker's text may hold and no notification may (docs/PRIVACY.md).
LEAD_PHONE = "0501234567"
LEAD_NAME = "Cafe Privacy Test"
ERROR_PHONE = "+966 55 123 4567"
FAILURES = 20
SUCCESSES = 25


def canary_alert_settings(settings: Any, media_root: str) -> Any:
    """The settings the canary's alert tests run with: evidence under `media_root`, links to
    PUBLIC_URL, a rate limit the frozen clock cannot trip, no group wait."""
    settings.MEDIA_ROOT = media_root
    settings.LEADOPS_PUBLIC_URL = PUBLIC_URL
    settings.LEADOPS_DEFAULT_RATE_LIMIT_PER_MIN = 100_000  # the canary's reports come in one frozen instant
    settings.LEADOPS_ALERT_GROUP_WAIT_S = 0
    settings.LEADOPS_ALERT_GROUP_INTERVAL_S = 30
    settings.LEADOPS_ALERT_REPEAT_INTERVAL_S = REPEAT_S
    return settings


@dataclass
class FailingCanary:
    canary: Any  # the canary's signed client (tests/signing.py)
    screenshot_id: str
    failed_attempt_ids: list[str]


def _publish(version: str) -> None:
    release_publish(version=version, fileobj=io.BytesIO(tar_artifact(version)),
                    filename=f"worker-{version}.tar.gz", actor="tests")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _update(signed, version: str) -> str:
    """What the reference worker does: check, install what the portal assigns, heartbeat it."""
    answer = signed.get("/api/v1/updates/check", query=f"version={version}").json()
    target = answer["target"]
    if target is not None:
        for stage in ("downloaded", "installed", "self_test"):
            response = signed.post("/api/v1/updates/report",
                                   {"version": target["version"], "stage": stage, "ok": True})
            assert response.status_code == 200, response.content
        version = target["version"]
    response = signed.post("/api/v1/heartbeat", {"version": version, "status": "busy", "running_jobs": 1})
    assert response.status_code == 200, response.content
    return version


def failing_canary_make(make_signed) -> FailingCanary:
    stable, canary = make_signed("w-stable"), make_signed("w-canary")
    _publish(STABLE_VERSION)
    rollout_start(version=STABLE_VERSION, channel_name="stable", steps=[{"percent": 100}], actor="tests")
    rollout_promote(channel_name="stable", actor="tests")
    _publish(CANARY_VERSION)
    rollout_start(version=CANARY_VERSION, channel_name="stable", canary=["w-canary"],
                  steps=[{"canary": ["w-canary"], "hold_s": 3600}, {"percent": 100}], actor="tests")
    assert _update(stable, STABLE_VERSION) == STABLE_VERSION
    assert _update(canary, STABLE_VERSION) == CANARY_VERSION

    provider = make_provider("maps")
    make_jobs(SUCCESSES, provider=provider)
    for job in stable.pull(SUCCESSES).json()["jobs"]:
        body = {"attempt_id": job["attempt_id"], "outcome": "succeeded",
                "leads": [lead(name=LEAD_NAME, phone=LEAD_PHONE)]}
        assert stable.report(job["id"], body).status_code == 200
    jobs = canary_fails(canary, code="blocked", count=FAILURES, screenshot=True)
    return FailingCanary(canary=canary, screenshot_id=jobs[0]["evidence_id"],
                         failed_attempt_ids=[job["attempt_id"] for job in jobs])


def canary_fails(canary, *, code: str, count: int, screenshot: bool = False) -> list[dict[str, Any]]:
    """`count` new jobs of `maps` that the canary pulls and reports failed with `code` (a screenshot of
    the first); returns the jobs, the first with its `evidence_id`."""
    make_jobs(count, provider=make_provider("maps"))
    jobs = canary.pull(count).json()["jobs"]
    assert len(jobs) == count
    if screenshot:
        response = canary.evidence(jobs[0]["id"], jobs[0]["attempt_id"], _png())
        assert response.status_code == 200, response.content
        jobs[0]["evidence_id"] = response.json()["evidence_id"]
    for job in jobs:
        body = {"attempt_id": job["attempt_id"], "outcome": "failed", "leads": [],
                "error": {"code": code, "message": f"captcha after calling {ERROR_PHONE}", "retryable": False},
                "log_tail": f"opened the listing\ncalled {ERROR_PHONE}\ncaptcha shown"}
        response = canary.report(job["id"], body)
        assert response.status_code == 200, response.content
    return jobs


def pii_in(text: str) -> list[str]:
    """The personal data of the scenario found in `text` (a phone in any spelling, the lead's name)."""
    digits = "".join(ch for ch in text if ch.isdigit())
    found = [word for word in (LEAD_PHONE, LEAD_NAME, ERROR_PHONE) if word in text]
    found += [phone for phone in ("501234567", "551234567") if phone in digits]
    return found
