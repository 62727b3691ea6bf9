"""Reads of the job queue, for dashboards, admin and other apps."""

from __future__ import annotations

from django.db.models import Count, Q

from queueing.models import Campaign, Job, JobState, Provider


def enabled_provider_names() -> list[str]:
    return list(Provider.objects.filter(enabled=True).order_by("name").values_list("name", flat=True))


def queue_depth_by_state_and_provider() -> list[dict]:
    """Rows of {provider, state, count}, one per non-empty pair."""
    return list(
        Job.objects.values("provider__name", "state").annotate(count=Count("id"))
        .order_by("provider__name", "state")
    )


def campaign_progress(*, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Succeeded / dead / cancelled / remaining jobs per campaign, in one query."""
    rows = (
        Job.objects.filter(campaign_id__in=campaign_ids).values("campaign_id").annotate(
            total=Count("id"),
            succeeded=Count("id", filter=Q(state=JobState.SUCCEEDED)),
            dead=Count("id", filter=Q(state=JobState.DEAD)),
            cancelled=Count("id", filter=Q(state=JobState.CANCELLED)),
        )
    )
    progress = {}
    for row in rows:
        done = row["succeeded"] + row["dead"] + row["cancelled"]
        progress[row["campaign_id"]] = {**row, "remaining": row["total"] - done}
    return progress


def campaigns_with_progress() -> list[tuple[Campaign, dict[str, int]]]:
    campaigns = list(Campaign.objects.select_related("provider"))
    progress = campaign_progress(campaign_ids=[c.pk for c in campaigns])
    return [(c, progress.get(c.pk, {})) for c in campaigns]
