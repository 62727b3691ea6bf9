"""django-q2 entry points: thin wrappers that call services (scheduled by a data migration)."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings

from leadops.clock import now as clock_now
from queueing.services import breaker_outcomes_purge, leases_reap, receipts_purge

logger = logging.getLogger(__name__)


def reap_expired_leases() -> int:
    reaped = leases_reap()
    if reaped:
        logger.info("lease reaper requeued or buried %d jobs", reaped)
    return reaped


def purge_report_receipts() -> int:
    cutoff = clock_now() - dt.timedelta(hours=settings.LEADOPS_IDEMPOTENCY_TTL_H)
    return receipts_purge(older_than=cutoff)


def purge_breaker_outcomes() -> int:
    return breaker_outcomes_purge()
