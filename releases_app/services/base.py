"""What every releases service shares: defaults, the refusal error, the audit row and its event."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from core import events
from core.audit import staff_action_current
from releases_app.models import (
    ReleaseAuditEvent,
    Rollout,
)

MANIFEST_SCHEMA = 1
DEFAULT_CHANNELS = ("stable", "beta", "canary")
DEFAULT_HOLD_S = 1800
# What a step's hold must leave an online worker to install (docs/RELEASES.md, "How fast a change
# reaches the fleet"): up to one heartbeat interval to learn its target, the download, unpacking
# and self-test, then a heartbeat reporting the new version. Two intervals cover a heartbeat that
# was lost or answered just before the change; this allowance covers a large artifact on a slow
# link. The gates never judge a step sooner than that after it started, whatever its hold_s.
INSTALL_ALLOWANCE_S = 60
# Health-gate thresholds (docs/RELEASES.md, "Health gates"); a rollout may override any of them.
DEFAULT_GATES: dict[str, Any] = {
    "max_error_rate": 0.02,          # the floor of the allowed error rate
    "error_rate_factor": 1.5,        # ... or this times the previous release's rate, if higher
    "min_attempts": 20,              # fewer finished attempts than this: too little data -> pause
    "heartbeat_factor": 2.0,         # a heartbeat older than this times its interval: failed
    "baseline_hours": 24,            # the previous release's rate is measured over this window
    # The yield gate (docs/RELEASES.md, "Yield gate"): the canary's yield against the rest of the
    # channel over the same window and provider mix; 0 turns it off.
    "yield_min_share": 0.8,          # each yield measure must reach this share of the baseline's
    "yield_min_jobs": 20,            # succeeded jobs each cohort needs before yield is judged
    "yield_action": "pause",         # "pause" or "rollback" when the yield is low
}


def min_hold_s(heartbeat_interval_s: int) -> int:
    """The shortest hold after which the gates may judge a step: 2 heartbeats + the install allowance."""
    return 2 * heartbeat_interval_s + INSTALL_ALLOWANCE_S


def heartbeat_window(*, heartbeat_interval_s: int, gates: dict[str, Any]) -> dt.timedelta:
    """A worker heard from within this window is online; silent longer, it is late (the gates)."""
    factor = gates.get("heartbeat_factor", DEFAULT_GATES["heartbeat_factor"])
    return dt.timedelta(seconds=heartbeat_interval_s * factor)


class ReleaseRefused(Exception):
    """A release, channel or rollout change that cannot be made; the message says why."""


def release_audit(*, action: str, actor: str, channel: str = "", version: str = "",
                  rollout: Rollout | None = None, detail: dict[str, Any] | None = None,
                  from_state: str = "", to_state: str = "") -> None:
    ReleaseAuditEvent.objects.create(
        action=action, actor=actor[:150], channel=channel, version=version,
        rollout_id_ref=rollout.pk if rollout is not None else None, detail=detail or {},
        created_at=timezone.now(), staff_action=staff_action_current(),
    )
    events.publish("rollout.changed", channel=channel, version=version, from_state=from_state,
                   to_state=to_state or action)
