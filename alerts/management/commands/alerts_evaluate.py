"""alerts_evaluate [--once]: the alert evaluator (its own process; docs/DEPLOY.md)."""

from __future__ import annotations

import signal
import threading

from alerts.evaluator import evaluator_run
from core.commands import OneLineErrorCommand


class Command(OneLineErrorCommand):
    help = (
        "Run the alert evaluator: rules every LEADOPS_ALERT_EVAL_INTERVAL_S, group flushes and "
        "deliveries as they fall due. --once runs one round and exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true")

    def handle(self, *args, once, **options):
        stop = threading.Event()
        if not once:
            # SIGTERM (make run's Ctrl-C, a process manager) ends the current round, then exits.
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
        evaluator_run(once=once, stop=stop)
