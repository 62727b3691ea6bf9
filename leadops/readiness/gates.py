"""The gates in their order, and one read of them: `readiness_check`."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from leadops.readiness import alerts, breakers_dlq, privacy, secrets, throttling, updates
from leadops.readiness.base import Gate

GATES: dict[str, Callable[[dt.datetime], Gate]] = {
    "secrets": secrets.check,
    "updates": updates.check,
    "breakers_dlq": breakers_dlq.check,
    "alerts": alerts.check,
    "privacy": privacy.check,
    "throttling": throttling.check,
}

logger = logging.getLogger(__name__)


@dataclass
class Readiness:
    go: bool
    checked_at: dt.datetime
    gates: list[Gate]

    def as_dict(self) -> dict[str, Any]:
        return {"go": self.go, "checked_at": self.checked_at.isoformat(),
                "gates": [gate.as_dict() for gate in self.gates]}


def _gate_read(name: str, check: Callable[[dt.datetime], Gate], now: dt.datetime) -> Gate:
    """One gate; a gate that cannot be read does not hold, and the others are still read."""
    try:
        return check(now)
    except Exception as exc:
        logger.exception("readiness gate %s could not be checked", name)
        return Gate(name, False, f"could not be checked ({type(exc).__name__}): see the portal's log")


def readiness_check(*, now: dt.datetime | None = None, only: list[str] | None = None) -> Readiness:
    """Every gate (or the `only` ones), read now; go when each holds."""
    now = now or timezone.now()
    gates = [_gate_read(name, check, now) for name, check in GATES.items() if only is None or name in only]
    return Readiness(go=all(gate.ok for gate in gates), checked_at=now, gates=gates)
