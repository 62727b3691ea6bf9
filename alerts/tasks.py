"""django-q2 entry points of alerting: thin wrappers that call services."""

from __future__ import annotations

from alerts.services import evaluator_tick


def evaluate_alerts() -> dict[str, int]:
    """One evaluator round; a fallback beside the `alerts_evaluate` process (schedules run once a minute)."""
    return evaluator_tick()
