"""The periodic tasks of the portal, kept in django-q2's Schedule table.

They are (re)created after every `migrate`, so a fresh database and an upgraded one both get
them; an operator's change to the interval in admin is kept (only missing rows are created).
"""

from __future__ import annotations

from typing import Any

# (name, dotted function, minutes between runs)
PERIODIC_TASKS: list[tuple[str, str, int]] = [
    ("queueing: reap expired leases", "queueing.tasks.reap_expired_leases", 1),
    ("queueing: purge old report receipts", "queueing.tasks.purge_report_receipts", 60),
    ("queueing: purge old breaker outcomes", "queueing.tasks.purge_breaker_outcomes", 10),
    # Its cut comes from the retention policy (class "attempts"), hence the project's task.
    ("queueing: prune finished jobs", "leadops.tasks.prune_finished_jobs", 60),
    ("queueing: run due recurring campaigns", "queueing.tasks.run_campaign_schedules", 1),
    # The monitor's job counts (docs/SYSTEM_OVERVIEW.md, "Job counts"): fold the deltas, and once a
    # day recount from the jobs.
    ("queueing: compact job counts", "queueing.tasks.compact_job_counts", 5),
    ("queueing: reconcile job counts", "queueing.tasks.reconcile_job_counts", 1440),
    ("workers: purge old nonces", "workers_mgmt.tasks.purge_old_nonces", 10),
    ("workers: purge old failed authentications", "leadops.tasks.purge_auth_failures", 60),
    ("workers: expire previous credentials", "workers_mgmt.tasks.expire_previous_credentials", 5),
    ("monitor: announce offline workers", "workers_mgmt.tasks.announce_offline_workers", 1),
    ("monitor: trim the event replay log", "leadops.tasks.trim_monitor_events", 10),
    ("releases: evaluate rollout health gates", "releases_app.tasks.evaluate_rollouts", 1),
    ("releases: re-sign manifests before expiry", "releases_app.tasks.refresh_manifests", 60),
    # A fallback beside the `alerts_evaluate` process (the real 10 s evaluator): schedules run at most
    # once a minute. Row locks make a round here and one there never double-send.
    ("alerts: evaluate rules and deliver", "alerts.tasks.evaluate_alerts", 1),
    ("alerts: purge old alert history", "leadops.tasks.purge_alert_history", 60),
    ("limits: purge spent rate-limit states", "leadops.tasks.purge_rate_limit_states", 10),
    # Every data class by the retention policy, once a day (docs/PRIVACY.md, "Retention").
    ("retention: purge expired data", "leadops.tasks.purge_retention", 1440),
]


def ensure_schedules(*, using: str = "default", **kwargs: Any) -> None:
    from django.db import connections
    from django_q.models import Schedule

    # `migrate some_app 0002` on a fresh database also sends post_migrate: django-q2's tables may
    # not exist yet, and the next full migrate creates the rows.
    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return
    for name, func, minutes in PERIODIC_TASKS:
        schedule, created = Schedule.objects.using(using).get_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
        if not created and schedule.func != func:
            # The task moved module (worker presence went to workers_mgmt); the interval is the
            # operator's and stays.
            Schedule.objects.using(using).filter(pk=schedule.pk).update(func=func)
