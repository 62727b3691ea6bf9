"""The writes of readiness: the memory of what each gate said, which `readiness_lost` reads."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from leadops.models import ReadinessGateState
from leadops.readiness.gates import GATES, Readiness, readiness_check

# How long a recorded check stands for the alert evaluator before the gates are read again.
RECHECK_AFTER = dt.timedelta(seconds=60)


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
