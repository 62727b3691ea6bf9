"""What must hold after any run, however it was disturbed: the chaos run's final checks."""

from __future__ import annotations

from django.db.models import Count, Q, Sum

from core.counters import counters_read
from ingestion.models import IngestCounter, Lead, LeadFingerprint
from queueing.models import AttemptState, Job, JobAttempt, JobState, ReportReceipt


def _sum(queryset, field: str) -> int:
    return int(queryset.aggregate(total=Sum(field))["total"] or 0)


def jobs_finished_once_problems() -> list[str]:
    """Every job succeeded (by exactly one attempt) or is dead; no lease or running attempt left."""
    problems = []
    unfinished = dict(Job.objects.exclude(state__in=[JobState.SUCCEEDED, JobState.DEAD])
                      .values_list("pk", "state")[:10])
    if unfinished:
        problems.append(f"jobs neither succeeded nor dead: {unfinished}")
    wins = Job.objects.annotate(wins=Count("attempt_set", filter=Q(attempt_set__state=AttemptState.SUCCEEDED)))
    wrong = list(wins.filter(state=JobState.SUCCEEDED).exclude(wins=1).values_list("pk", "wins")[:10])
    wrong += list(wins.filter(state=JobState.DEAD).exclude(wins=0).values_list("pk", "wins")[:10])
    if wrong:
        problems.append(f"jobs whose succeeded attempts are not exactly one (0 for dead): {wrong}")
    leased = list(Job.objects.filter(Q(leased_by__isnull=False) | Q(lease_expires_at__isnull=False))
                  .values_list("pk", flat=True)[:10])
    if leased:
        problems.append(f"jobs still holding a lease: {leased}")
    running = JobAttempt.objects.filter(state=AttemptState.RUNNING).count()
    if running:
        problems.append(f"{running} attempts still running")
    return problems


def counter_problems() -> list[str]:
    """Each counter against a recount from the rows it counts."""
    metrics = counters_read()
    attempts = JobAttempt.objects.all()
    valid_leads = Lead.objects.filter(phone_e164__isnull=False).count()
    invalid_leads = Lead.objects.filter(phone_e164__isnull=True).count()
    counters = IngestCounter.objects.all()
    checks = {
        "added: hourly counters = stored leads": (_sum(counters, "added"), valid_leads),
        "added: attempts = stored leads": (_sum(attempts, "leads_added"), valid_leads),
        "added: jobs = stored leads": (_sum(Job.objects.all(), "leads_added"), valid_leads),
        "added: /metrics = stored leads": (metrics.get("leads_added", 0), valid_leads),
        "added: fingerprints = stored leads": (LeadFingerprint.objects.count(), valid_leads),
        "invalid: hourly counters = stored invalid leads": (_sum(counters, "invalid"), invalid_leads),
        "invalid: attempts = stored invalid leads": (_sum(attempts, "leads_invalid"), invalid_leads),
        "invalid: /metrics = stored invalid leads": (metrics.get("leads_invalid", 0), invalid_leads),
        "duplicates: hourly counters = attempts": (_sum(counters, "duplicates"),
                                                   _sum(attempts, "leads_duplicates")),
        "duplicates: /metrics = attempts": (metrics.get("leads_duplicates", 0), _sum(attempts, "leads_duplicates")),
        "duplicates: in batch + existing = whole": (
            _sum(counters, "duplicates_in_batch") + _sum(counters, "duplicates_existing"),
            _sum(counters, "duplicates")),
        "reports: /metrics = receipts": (metrics.get("reports", 0), ReportReceipt.objects.count()),
        "reports: attempts = receipts": (_sum(attempts, "reports"), ReportReceipt.objects.count()),
        "claims: /metrics = attempts": (metrics.get("claims", 0), attempts.count()),
    }
    return [f"{name}: {counted} != {recount}" for name, (counted, recount) in checks.items()
            if counted != recount]
