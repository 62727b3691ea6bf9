"""demo_loop: `make run`'s demo at work, one step every 10 s until stopped (leadops/demo.py).

The flaky provider's failures (dead jobs with evidence, its breaker opening and closing) and the top-up
of demo work, all logged as the demo. Development only: it refuses to run with DEBUG off.
"""

from __future__ import annotations

import itertools
import logging
import time

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connections

from core.commands import OneLineErrorCommand

logger = logging.getLogger(__name__)
# The demo queue is topped up every third step (30 s), as make run always did.
TOP_UP_EVERY = 3


class Command(OneLineErrorCommand):
    help = "Run make run's living demo (development only): a step every 10 s until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="One step, then exit.")

    def handle(self, *args, **options):
        from leadops.demo import TICK_S, demo_jobs_top_up, demo_setup, demo_tick

        if not settings.LEADOPS_DEVELOPMENT:
            raise CommandError("demo_loop is for development (make run) only: DEBUG is off.")
        demo_setup()
        for step in itertools.count():
            try:
                if step % TOP_UP_EVERY == 0:
                    demo_jobs_top_up()
                did = demo_tick()
            except Exception:  # a busy SQLite, a race with a worker: the next step tries again
                logger.exception("demo step failed; trying again in %s s", TICK_S)
            else:
                if not did.startswith("breaker"):  # quiet while it rests or cools down
                    self.stdout.write(f"demo: {did}")
            connections.close_all()
            if options["once"]:
                return
            time.sleep(TICK_S)
