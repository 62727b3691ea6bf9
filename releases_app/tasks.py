"""django-q2 entry points of releases (leadops/schedules.py); each calls one service."""

from __future__ import annotations

from releases_app import services


def evaluate_rollouts() -> dict[int, str]:
    """Judge every running rollout whose step hold is over (docs/RELEASES.md, "Health gates")."""
    return services.rollouts_evaluate()


def refresh_manifests() -> list[str]:
    """Re-sign channel manifests past half their life, so no worker ever holds an expired one."""
    return services.manifests_refresh()
