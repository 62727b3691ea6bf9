"""The lineage of a lead (campaign -> job -> attempt -> worker -> release -> evidence -> dedup), and of a
dead job backwards (the job -> its attempts -> their workers and releases -> evidence -> what it found).

Read-only; the page shows a lead's name and phone masked unless the viewer may see personal data
(`ingestion.view_pii`, docs/PRIVACY.md), exactly as the lead admin does.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse
from django.utils import timezone

from core.logging import mask_pii
from ingestion.models import Lead
from ingestion.selectors import lead_dedup_decision
from leadops.failures.clusters import ReleaseHistory
from queueing.models import AttemptEvidence, Job, JobAttempt
from releases_app.models import Channel, ReleaseAuditAction, ReleaseAuditEvent
from workers_mgmt.models import Worker


@dataclass
class LineageStep:
    """One link of the chain: what it is, where its admin page is, and its facts."""

    kind: str
    title: str
    url: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)


def _when(at: dt.datetime | None) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _admin(name: str, pk: Any) -> str:
    return reverse(f"admin:{name}_change", args=[pk])


def _lead_step(lead: Lead, *, pii: bool) -> LineageStep:
    show = (lambda text: text) if pii else mask_pii
    return LineageStep("lead", f"Lead {lead.pk}", _admin("ingestion_lead", lead.pk), [
        ("name", show(lead.name)), ("phone", show(lead.phone_e164 or "invalid phone")),
        ("provider", lead.provider), ("received", _when(lead.created_at)),
    ])


def _campaign_and_job_steps(job: Job) -> list[LineageStep]:
    steps = []
    if job.campaign_id is not None and job.campaign is not None:
        steps.append(LineageStep("campaign", f"Campaign {job.campaign.name}",
                                 _admin("queueing_campaign", job.campaign_id),
                                 [("provider", job.campaign.provider.name),
                                  ("run", str(job.campaign_run.number) if job.campaign_run else "-")]))
    steps.append(LineageStep("job", f"Job {job.pk}", _admin("queueing_job", job.pk), [
        ("state", job.state), ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("dead reason", job.dead_reason or "-"),
        ("payload", json.dumps(job.payload, ensure_ascii=False)[:200]),
    ]))
    return steps


def _manifest_sequence(channel: str, at: dt.datetime) -> str:
    signed = (ReleaseAuditEvent.objects.filter(action=ReleaseAuditAction.MANIFEST_SIGNED, channel=channel,
                                               created_at__lte=at).order_by("-created_at").first())
    if signed is None or not isinstance(signed.detail, dict):
        return "-"
    return f"{signed.detail.get('sequence', '-')} (signed {_when(signed.created_at)}, {signed.version})"


def _attempt_steps(attempt: JobAttempt, history: ReleaseHistory) -> list[LineageStep]:
    error = attempt.error if isinstance(attempt.error, dict) else {}
    steps = [LineageStep("attempt", f"Attempt {attempt.number} of job {attempt.job_id}",
                         _admin("queueing_jobattempt", attempt.pk), [
        ("state", attempt.state), ("claimed", _when(attempt.claimed_at)),
        ("finished", _when(attempt.finished_at)),
        ("leads", f"{attempt.leads_added} added, {attempt.leads_duplicates} duplicates, "
                  f"{attempt.leads_invalid} invalid"),
        ("error", f"{error.get('code', '')}: {mask_pii(str(error.get('message', '')))[:200]}"
         if error else "-"),
    ])]
    worker = Worker.objects.filter(pk=attempt.worker_id).first() if attempt.worker_id else None
    if worker is not None:
        steps.append(LineageStep("worker", f"Worker {worker.pk}", _admin("workers_mgmt_worker", worker.pk), [
            ("channel", worker.channel), ("reports now", worker.reported_version or "-"),
        ]))
        version = history.release_at(worker.pk, attempt.claimed_at)
        channel = Channel.objects.filter(name=worker.channel).first()
        steps.append(LineageStep("release", f"Release {version}", "", [
            ("channel", worker.channel),
            ("manifest sequence at the claim", _manifest_sequence(worker.channel, attempt.claimed_at)),
            ("channel's release now", channel.current.version if channel and channel.current else "-"),
        ]))
    evidence = list(AttemptEvidence.objects.filter(attempt_id=attempt.pk).order_by("created_at"))
    links = [(f"screenshot {index + 1} ({_when(item.created_at)})",
              reverse("admin:queueing_attemptevidence_file", args=[item.pk]))
             for index, item in enumerate(evidence)]
    steps.append(LineageStep("evidence", "Evidence", "", [
        ("screenshots", str(len(evidence))),
        ("log tail", f"{len(attempt.log_tail.splitlines())} lines" if attempt.log_tail else "none"),
    ], links=links))
    return steps


def lead_lineage(*, lead: Lead, pii: bool) -> list[LineageStep]:
    """From the campaign down to the dedup decision that kept this lead."""
    steps: list[LineageStep] = []
    job = (Job.objects.select_related("campaign__provider", "campaign_run").filter(pk=lead.job_id).first()
           if lead.job_id else None)
    if job is not None:
        steps += _campaign_and_job_steps(job)
    else:
        steps.append(LineageStep("job", f"Job {lead.job_id or '-'}", "",
                                 [("note", "the job is gone (pruned)")]))
    attempt = JobAttempt.objects.filter(pk=lead.attempt_id).first() if lead.attempt_id else None
    if attempt is not None:
        steps += _attempt_steps(attempt, ReleaseHistory({attempt.worker_id} if attempt.worker_id else set()))
    decision = lead_dedup_decision(lead=lead)
    steps.append(LineageStep("dedup", f"Dedup decision: {decision['decision']}", "", [
        (name.replace("_", " "), _when(value) if isinstance(value, dt.datetime) else str(value))
        for name, value in decision.items() if name != "decision"
    ]))
    steps.append(_lead_step(lead, pii=pii))
    return steps


def dead_job_lineage(*, job: Job) -> list[LineageStep]:
    """From a DLQ entry backwards: the job, each attempt newest first with its worker, release, evidence."""
    steps = _campaign_and_job_steps(job)[::-1]
    attempts = list(JobAttempt.objects.filter(job=job).order_by("-number"))
    history = ReleaseHistory({a.worker_id for a in attempts if a.worker_id})
    for attempt in attempts:
        steps += _attempt_steps(attempt, history)
    leads = Lead.objects.filter(job_id=job.pk)
    steps.append(LineageStep("leads", "Leads this job reported", "", [
        ("stored", str(leads.count())), ("usable phone", str(leads.filter(phone_e164__isnull=False).count())),
    ], links=[(f"lead {pk}", reverse("leadops-lead-lineage", args=[pk]))
              for pk in leads.order_by("pk").values_list("pk", flat=True)[:20]]))
    return steps
