"""`make run`'s living demo: every part of the portal at work (docs/RUNBOOK.md, "The demo").

`demo_setup` (once, at start) adds what the picture needs beside the simulated fleet and the demo
rollout: a local receiver whose messages land in Admin › Demo inbox, a route sending every alert to
it, a recurring campaign that keeps jobs flowing, and a flaky provider with a demo scraper.
`demo_tick` (every `TICK_S`, the `demo_loop` process) plays the flaky provider's part: a burst of
failures (each with a screenshot and a log tail) sends jobs to the dead-letter queue and opens the
provider's circuit breaker; after its cooldown a probe succeeds and closes it; then it rests and
starts again. The breaker opening fires the `breaker_open` alert, which the evaluator delivers to the
demo inbox (and its resolution too). Everything here acts as `Actor.demo()`, never as the admin.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from functools import cache
from typing import Any

from django.db import transaction
from django.utils import timezone

from alerts.models import Receiver, ReceiverKind, Route
from alerts.services import receiver_set, route_save
from core.audit import Actor, staff_action_record
from queueing.models import Breaker, BreakerScope, BreakerState, BreakerTransition, Campaign, Provider
from queueing.services import (
    campaign_create,
    evidence_upload,
    job_report,
    jobs_enqueue,
    jobs_pull,
    provider_policy_set,
    report_request_hash,
)
from releases_app.demo import DEMO_CHANNEL
from releases_app.models import Rollout, RolloutState
from releases_app.services import rollout_resume
from workers_mgmt.models import Worker
from workers_mgmt.services import worker_create

TICK_S = 10
DEMO_PROVIDER = "demo-maps"
FLAKY_PROVIDER = "demo-flaky"
FLAKY_WORKER = "demo-flaky-scraper"
DEMO_RECEIVER = "Demo inbox"
DEMO_ROUTE = "demo: every alert to the demo inbox"
RECURRING_CAMPAIGN = "Demo: recurring search (every 5 minutes)"
# A small breaker that opens after a burst and closes on one good probe a minute later.
FLAKY_BREAKER = {"breaker_failure_pct": 50, "breaker_min_outcomes": 4, "breaker_window_s": 120,
                 "breaker_cooldown_s": 60, "breaker_probes": 1}
FAILURES_PER_BURST = 4
# How long the breaker stays closed (jobs succeeding) before the next burst of failures.
REST_S = 150
FLAKY_ERROR = {"code": "captcha_blocked", "retryable": False,
               "message": "The provider answered with a CAPTCHA page instead of results (demo)."}
FLAKY_LOG_TAIL = ("GET https://maps.example/search?q=pharmacy 200 (1.2 s)\n"
                  "waiting for selector .result-card ... timed out after 15 s\n"
                  "page title: 'Unusual traffic from your network'\n"
                  "giving up: captcha_blocked (not retryable)\n")


def demo_actor() -> Actor:
    return Actor.demo()


def demo_setup() -> None:
    """Add the receiver, route, recurring campaign and flaky provider the demo needs (idempotent)."""
    actor = demo_actor()
    receiver = Receiver.objects.filter(name=DEMO_RECEIVER).first()
    if receiver is None:
        receiver = receiver_set(name=DEMO_RECEIVER, kind=ReceiverKind.DEMO, send_resolved=True, actor=actor)
    if not Route.objects.filter(name=DEMO_ROUTE).exists():
        route_save(route=Route(name=DEMO_ROUTE, matchers=[], receiver=receiver, group_by=["alertname"],
                               group_wait_s=10, group_interval_s=60, repeat_interval_s=3600), actor=actor)
    demo_maps, _ = provider_policy_set(name=DEMO_PROVIDER, actor=actor)
    if not Campaign.objects.filter(name=RECURRING_CAMPAIGN).exists():
        campaign_create(campaign=Campaign(
            name=RECURRING_CAMPAIGN, provider=demo_maps, schedule="*/5 * * * *",
            queries="\n".join(["مطعم", "coffee shop", "صيدلية", "car repair"]),
            cities="\n".join(["Riyadh", "جدة", "Dammam"]),
        ), actor=actor)
    _flaky_provider(actor)
    if not Worker.objects.filter(pk=FLAKY_WORKER).exists():
        worker_create(worker_id=FLAKY_WORKER, name="Demo scraper of the flaky provider",
                      notes="Plays the flaky provider in make run's demo (leadops/demo.py).", actor=actor)


def demo_jobs_top_up(minimum: int = 30) -> int:
    """Keep some work in the demo queue, enqueued through a campaign as staff would, by the demo.

    A newcomer then sees the campaign's progress bar move and the staff-action trail fill
    (Campaigns and Staff actions in admin). Returns the jobs enqueued (0: enough are queued).
    """
    from queueing.models import Job, JobState
    from queueing.services import campaign_enqueue, provider_get_or_create

    provider = provider_get_or_create(name=DEMO_PROVIDER)
    if Job.objects.filter(provider=provider, state=JobState.QUEUED).count() >= minimum:
        return 0
    actor = demo_actor()
    number = Campaign.objects.filter(provider=provider, schedule="").count() + 1
    campaign = campaign_create(campaign=Campaign(
        name=f"Demo campaign {number}", provider=provider,
        queries="\n".join(["مطعم", "coffee shop", "صيدلية", "car repair", "بقالة", "dentist"]),
        cities="\n".join(["Riyadh", "جدة", "Dammam", "مكة", "Medina"]),
    ), actor=actor)
    return campaign_enqueue(campaign=campaign, actor=actor)


def _flaky_provider(actor: Actor) -> Provider:
    provider, _ = provider_policy_set(name=FLAKY_PROVIDER, max_attempts=2, actor=actor)
    changes = {name: [getattr(provider, name), value] for name, value in FLAKY_BREAKER.items()
               if getattr(provider, name) != value}
    if changes:
        with transaction.atomic():
            Provider.objects.filter(pk=provider.pk).update(**FLAKY_BREAKER)
            staff_action_record(actor=actor, action="provider.breaker_policy",
                                object_type="queueing.provider", object_ids=[provider.pk], changes=changes)
        provider.refresh_from_db()
    return provider


def demo_rollout_nudge() -> bool:
    """Resume the demo rollout when its gate paused it for too little data (the canary was still
    starting, on a busy machine): it goes on to wait for approval once the canary runs the release."""
    paused = Rollout.objects.filter(channel__name=DEMO_CHANNEL, state=RolloutState.PAUSED,
                                    state_reason__startswith="too little data").exists()
    if paused:
        rollout_resume(channel_name=DEMO_CHANNEL, actor=demo_actor())
    return paused


def demo_tick(now: dt.datetime | None = None) -> str:
    """One step of the demo: the flaky provider's cycle (what it did, in a few words), and the demo
    rollout kept going."""
    now = now or timezone.now()
    demo_rollout_nudge()
    breaker = Breaker.objects.filter(scope=BreakerScope.PROVIDER, key=FLAKY_PROVIDER).first()
    state = breaker.state if breaker is not None else BreakerState.CLOSED
    cooling = breaker is not None and (breaker.retry_at is None or breaker.retry_at > now)
    if state == BreakerState.OPEN and cooling:
        return "breaker open: cooling down"
    if state == BreakerState.CLOSED and _closed_since(now) < dt.timedelta(seconds=REST_S):
        return "breaker closed: resting"
    failing = state == BreakerState.CLOSED
    worker = Worker.objects.get(pk=FLAKY_WORKER)
    provider = Provider.objects.get(name=FLAKY_PROVIDER)
    count = FAILURES_PER_BURST if failing else 1
    # Enqueued just before the pull, so the simulated fleet rarely gets to them first.
    jobs_enqueue(provider=provider, payloads=[{"query": "صيدلية", "city": "Riyadh"}] * count)
    claims = jobs_pull(worker=worker, max_jobs=count, providers=[FLAKY_PROVIDER]).claims
    for claim in claims:
        if failing:
            evidence_upload(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id,
                            content_type="image/png", body=captcha_screenshot())
            _report(worker, claim, outcome="failed", error=FLAKY_ERROR, log_tail=FLAKY_LOG_TAIL)
        else:
            _report(worker, claim, outcome="succeeded", error=None, log_tail=None)
    return f"{len(claims)} {'failed' if failing else 'probe(s) succeeded'}"


def _closed_since(now: dt.datetime) -> dt.timedelta:
    """How long the flaky provider's breaker has been closed (for ever: a day)."""
    last = (BreakerTransition.objects.filter(scope=BreakerScope.PROVIDER, key=FLAKY_PROVIDER,
                                             to_state=BreakerState.CLOSED).order_by("-at").first())
    return now - last.at if last is not None else dt.timedelta(days=1)


def _report(worker: Worker, claim: Any, *, outcome: str, error: dict[str, Any] | None,
            log_tail: str | None) -> None:
    body: dict[str, Any] = {"outcome": outcome, "leads": [], **({"error": error} if error else {})}
    job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome=outcome, leads=[],
               error=error, idempotency_key=uuid.uuid4().hex,
               request_hash=report_request_hash(job_id=claim.job_id, body=body), log_tail=log_tail)


@cache
def captcha_screenshot() -> bytes:
    """A small PNG of the page the flaky provider answers with: the evidence of each failure."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (480, 200), "#f4f4f4")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 479, 36), fill="#3c4043")
    draw.text((12, 12), "maps.example/search?q=pharmacy", fill="#ffffff")
    draw.text((24, 70), "Unusual traffic from your network", fill="#202124")
    draw.text((24, 100), "Please confirm you are not a robot.", fill="#5f6368")
    draw.rectangle((24, 135, 44, 155), outline="#5f6368", width=2)
    draw.text((54, 140), "I'm not a robot   (LeadOps demo evidence)", fill="#202124")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
