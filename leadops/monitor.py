"""The admin monitor pages: the queue and ingestion at a glance, and the fleet per worker.

Both read aggregates, never the lead table, so they stay fast as leads grow; the jobs per state and
provider come from counts maintained by triggers (queueing/services/counts.py), not from counting
the job table on every view.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils.timezone import now as clock_now

from alerts.selectors import alerts_firing_count
from ingestion.selectors import ingestion_telemetry
from queueing.monitor_selectors import succeeded_recently, throughput_by_minute, work_blockers
from queueing.selectors import breakers_open, dlq_stats, queue_overview, worker_job_stats_24h
from releases_app.selectors import releases_overview
from workers_mgmt.models import Worker

# Dup-ratio badge thresholds: a scraper that mostly re-finds what it found is wasting its quota.
DUP_RATIO_WARN = 0.5
DUP_RATIO_ALERT = 0.8


def dup_ratio_badge(ratio: float | None) -> dict[str, Any]:
    if ratio is None:
        return {"text": "n/a", "level": "none"}
    level = "ok" if ratio < DUP_RATIO_WARN else "warn" if ratio < DUP_RATIO_ALERT else "alert"
    return {"text": f"{ratio * 100:.1f}%", "level": level}


def trend_chart(trend: list[dict[str, Any]], *, width: int = 560, height: int = 160) -> dict[str, Any]:
    """Bars of added and duplicates per local day, as coordinates for an inline SVG."""
    peak = max([day["added"] + day["duplicates"] for day in trend] + [1])
    slot = width / max(1, len(trend))
    bar_width = slot * 0.6
    bars = []
    for index, day in enumerate(trend):
        added_h = (day["added"] / peak) * (height - 20)
        dup_h = (day["duplicates"] / peak) * (height - 20)
        x = index * slot + (slot - bar_width) / 2
        bars.append({
            "x": round(x, 1), "width": round(bar_width, 1),
            "added_y": round(height - 20 - added_h, 1), "added_h": round(added_h, 1),
            "dup_y": round(height - 20 - added_h - dup_h, 1), "dup_h": round(dup_h, 1),
            "label": str(day["day"])[5:], "label_x": round(x + bar_width / 2, 1),
            "title": f"{day['day']}: {day['added']} added, {day['duplicates']} duplicates, "
                     f"{day['invalid']} invalid",
        })
    return {"width": width, "height": height, "bars": bars, "label_y": height - 5}


def fleet_grid(*, now: dt.datetime) -> dict[str, Any]:
    """Every worker as one cell of the fleet grid, by state, and how many are in each state.

    busy / idle: heartbeat on time, with or without running jobs; overdue: heartbeat late; never:
    no heartbeat yet; disabled; breaker: its circuit breaker is open (it gets no jobs).
    """
    overdue = dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S)
    tripped = {key for scope, key, _ in breakers_open() if scope == "worker"}
    cells = []
    workers = Worker.objects.order_by("id").only("id", "name", "enabled", "last_heartbeat_at", "running_jobs")
    for worker in workers:
        seen = worker.last_heartbeat_at
        if not worker.enabled:
            state = "disabled"
        elif worker.pk in tripped:
            state = "breaker"
        elif seen is None:
            state = "never"
        elif now - seen > overdue:
            state = "overdue"
        else:
            state = "busy" if worker.running_jobs else "idle"
        cells.append({"id": worker.pk, "name": worker.name, "state": state, "heartbeat_at": seen,
                      "running_jobs": worker.running_jobs})
    counts = {state: sum(1 for cell in cells if cell["state"] == state) for state in FLEET_STATES}
    return {"cells": cells, "counts": counts}


FLEET_STATES = ("busy", "idle", "overdue", "never", "breaker", "disabled")


def why_stopped(*, now: dt.datetime, queue: dict[str, Any], fleet: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines of "Why work is stopped": the queue's blockers, and a fleet with nobody to work."""
    lines = work_blockers(now=now)
    if queue["totals"].get("queued") and not (fleet["counts"]["busy"] + fleet["counts"]["idle"]):
        lines.append({"provider": "", "queued": queue["totals"]["queued"], "reason": "no_worker_online",
                      "text": f"No worker is online: {queue['totals']['queued']} queued jobs wait for one."})
    return lines


def monitor_context() -> dict[str, Any]:
    now = clock_now()
    telemetry = ingestion_telemetry()
    queue = queue_overview(now=now)
    fleet = fleet_grid(now=now)
    recent = succeeded_recently(now=now)
    return {
        "queue": queue,
        "fleet": fleet,
        "blockers": why_stopped(now=now, queue=queue, fleet=fleet),
        "throughput": throughput_by_minute(now=now),
        "succeeded_last_minute": len(recent),
        # When each of those finished (ms since the epoch): the live tile counts them out of its minute.
        "recent_succeeded_ms": [int(at.timestamp() * 1000) for at in recent],
        "telemetry": telemetry,
        "dup_badge": dup_ratio_badge(telemetry.get("dup_ratio_24h")),
        "chart": trend_chart(telemetry.get("trend", [])),
        "time_zone": settings.TIME_ZONE,
        **_live_context(),
        "dlq": dlq_stats(size=queue["dlq_size"]),
        "releases": releases_overview(),
        "alerts_firing": alerts_firing_count(),
    }


# The overview page moves its counters by the deltas of live events (staff actions publish
# jobs.moved); after a reconnect, when events may have been missed, it re-reads every counter from
# the snapshot below.


def _live_context() -> dict[str, Any]:
    """What the live script needs: the overdue threshold and the server's clock."""
    return {"overdue_s": settings.LEADOPS_HEARTBEAT_OVERDUE_S, "server_now": clock_now()}


def monitor_snapshot() -> dict[str, Any]:
    """Every counter of the overview page by its `data-metric` name, read now (aggregates only)."""
    queue = queue_overview()
    telemetry = ingestion_telemetry()
    metrics: dict[str, int] = {f"queue.{state}": count for state, count in queue["totals"].items()}
    for row in queue["by_provider"]:
        for state in queue["states"]:
            metrics[f"provider.{row['provider']}.{state}"] = row[state]
    now = clock_now()
    recent = succeeded_recently(now=now)
    metrics.update({
        "succeeded_last_minute": len(recent),
        "succeeded_last_hour": queue["succeeded_last_hour"], "dlq_size": queue["dlq_size"],
        "stuck_leases": queue["stuck_leases"], "alerts.firing": alerts_firing_count(),
        **{f"today.{key}": telemetry["today"][key] for key in ("added", "duplicates", "invalid")},
    })
    return {"at": now.isoformat(), "metrics": metrics,
            "dup_ratio_24h": dup_ratio_badge(telemetry.get("dup_ratio_24h")),
            "recent_succeeded_ms": [int(at.timestamp() * 1000) for at in recent],
            "throughput": throughput_by_minute(now=now)}


def monitor_snapshot_view(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(monitor_snapshot())
    response["Cache-Control"] = "no-store"
    return response


def monitor_view(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "Monitor", **monitor_context()}
    return TemplateResponse(request, "admin/leadops/monitor.html", context)


def workers_context() -> dict[str, Any]:
    now = clock_now()
    overdue = dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S)
    stats = worker_job_stats_24h(now=now)
    telemetry = ingestion_telemetry(now=now)
    ratios = {row["worker_id"]: row.get("dup_ratio_24h") for row in telemetry.get("by_worker", [])}
    rows = []
    for worker in Worker.objects.order_by("id"):
        age = (now - worker.last_seen_at) if worker.last_seen_at else None
        rows.append({
            "worker": worker,
            "heartbeat_age_s": int(age.total_seconds()) if age is not None else None,
            "online": age is not None and age <= overdue and worker.enabled,
            "done_24h": stats.get(worker.id, {}).get("done", 0),
            "failed_24h": stats.get(worker.id, {}).get("failed", 0),
            "dup_badge": dup_ratio_badge(ratios.get(worker.id)),
        })
    return {"rows": rows, "online": sum(1 for row in rows if row["online"]), "total": len(rows),
            **_live_context()}


def monitor_workers_view(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "Monitor: workers", **workers_context()}
    return TemplateResponse(request, "admin/leadops/monitor_workers.html", context)
