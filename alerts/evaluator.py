"""The evaluator loop (`alerts_evaluate`): evaluate rules every LEADOPS_ALERT_EVAL_INTERVAL_S, and in
between wake up exactly when a group is due or a delivery retry is, so a notification is not held
back by the evaluation period (docs/DEPLOY.md: the evaluator process).

django-q2 schedules run at most once a minute, far too slow for a 10-second evaluator, so this is its
own process; several may run (row locks keep them from double-sending).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from alerts.selectors import next_due_at
from alerts.services import evaluator_tick

logger = logging.getLogger(__name__)

# Never sleep less than this (a busy loop on a due row that something else holds), nor longer than
# the evaluation period.
MIN_SLEEP_S = 0.05


def _refresh_connections() -> None:
    # A long-lived process must drop broken or expired connections between rounds (as Django does
    # between requests); inside a transaction (a test calling one round) there is nothing to drop.
    if not connection.in_atomic_block:
        close_old_connections()


def evaluator_run(*, once: bool = False, stop: threading.Event | None = None) -> None:
    """Run evaluator rounds until `stop` is set (or one round with `once`)."""
    stop = stop or threading.Event()
    next_evaluation = 0.0
    while not stop.is_set():
        _refresh_connections()
        started = time.monotonic()
        evaluate = started >= next_evaluation
        if evaluate:
            next_evaluation = started + settings.LEADOPS_ALERT_EVAL_INTERVAL_S
        try:
            evaluator_tick(evaluate=evaluate)
        except Exception:
            # One bad round (a database restart, a receiver's odd answer) must not stop alerting.
            logger.exception("alert evaluator round failed")
        if once:
            break
        sleep = next_evaluation - time.monotonic()
        try:
            due = next_due_at()
        except Exception:
            due = None
        if due is not None:
            sleep = min(sleep, (due - timezone.now()).total_seconds())
        stop.wait(max(MIN_SLEEP_S, min(sleep, settings.LEADOPS_ALERT_EVAL_INTERVAL_S)))
    _refresh_connections()
