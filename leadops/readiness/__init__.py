"""Go/No-Go: the seed's readiness gates, computed live from this installation's state.

Each gate is one module (`secrets`, `updates`, `breakers_dlq`, `alerts`, `privacy`, `throttling`)
that reads the apps through their selectors and answers a `Gate`: whether it holds, why in one line
an operator can act on, and links to the admin pages that show the evidence. What each gate checks
and how to make it hold: docs/PRODUCTION_READINESS.md.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from leadops.models import ReadinessGateState
from leadops.readiness import alerts, breakers_dlq, privacy, secrets, throttling, updates
from leadops.readiness.base import Evidence, Gate

GATES: dict[str, Callable[[dt.datetime], Gate]] = {
    "secrets": secrets.check,
    "updates": updates.check,
    "breakers_dlq": breakers_dlq.check,
    "alerts": alerts.check,
    "privacy": privacy.check,
    "throttling": throttling.check,
}

logger = logging.getLogger(__name__)

# How long a recorded check stands for the alert evaluator before the gates are read again.
RECHECK_AFTER = dt.timedelta(seconds=60)


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


def readiness_record(*, readiness: Readiness) -> list[ReadinessGateState]:
    """Store what each gate said now, and when it last held (the memory `readiness_lost` reads)."""
    now = readiness.checked_at
    states = []
    with transaction.atomic():
        known = {state.name: state for state in ReadinessGateState.objects.select_for_update()}
        for gate in readiness.gates:
            state = known.get(gate.name) or ReadinessGateState(name=gate.name)
            state.ok, state.why, state.checked_at = gate.ok, gate.why[:500], now
            if gate.ok:
                state.held_at = now
            state.save()
            states.append(state)
    return states


def readiness_lost(now: dt.datetime) -> list[tuple[str, str]]:
    """(gate, why) of every gate that held once and does not hold now.

    The alert evaluator asks every round (10 s); the gates are read again at most once in
    RECHECK_AFTER, in between the states last recorded (by a round or by `readiness`) answer.
    """
    states = list(ReadinessGateState.objects.filter(name__in=list(GATES)))
    fresh = len(states) == len(GATES) and all(now - state.checked_at < RECHECK_AFTER for state in states)
    if not fresh:
        states = readiness_record(readiness=readiness_check(now=now))
    return [(state.name, state.why) for state in states if not state.ok and state.held_at is not None]


__all__ = ["GATES", "Evidence", "Gate", "Readiness", "readiness_check", "readiness_lost", "readiness_record"]
