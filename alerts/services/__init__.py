"""Every write of alerting: rules, receivers, silences, the evaluator's three steps, delivery.

One evaluator round (`evaluator_tick`) is:
1. `alerts_evaluate` (rules.py): each enabled rule's condition -> Alert rows (pending -> firing ->
   resolved), each rule under a row lock so concurrent evaluators never both move the same alert;
2. `groups_sync` + `groups_flush` (grouping.py): firing alerts are routed to receivers and grouped; a
   due group is flushed under its row lock (SKIP LOCKED on PostgreSQL, the IMMEDIATE write lock on
   SQLite), and a Notification is created only when Alertmanager's rules say the receiver must hear
   about a change;
3. `notifications_deliver` (delivery.py): due notifications are claimed by compare-and-swap, sent,
   and every attempt is logged; failures are retried with backoff honouring Retry-After.
So however many evaluators run, each notification is created once and sent by one of them.
docs/SYSTEM_OVERVIEW.md ("Alerts") tells the whole story. One module per concern; the public names
are re-exported here.
"""

from __future__ import annotations

from alerts.services.acknowledge import alert_acknowledge
from alerts.services.base import (
    MIN_RETRY_WINDOW_S,
    RETRY_BASE_S,
    RETRY_CAP_S,
    SEND_LEASE_S,
    SLACK_MIN_GAP_S,
    AlertsError,
)
from alerts.services.config import (
    alerts_history_purge,
    receiver_check,
    receiver_set,
    receiver_test,
    route_save,
    routes_delete,
    silence_check,
    silence_create,
    silence_expire,
    silence_from_alert,
)
from alerts.services.delivery import (
    evaluator_tick,
    notification_claim,
    notification_send,
    notifications_deliver,
)
from alerts.services.grouping import (
    GroupPlan,
    groups_flush,
    groups_sync,
    message_build,
)
from alerts.services.rules import (
    alerts_evaluate,
    rule_set,
    rules_ensure,
)

__all__ = [
    "MIN_RETRY_WINDOW_S",
    "RETRY_BASE_S",
    "RETRY_CAP_S",
    "SEND_LEASE_S",
    "SLACK_MIN_GAP_S",
    "AlertsError",
    "GroupPlan",
    "alert_acknowledge",
    "alerts_evaluate",
    "alerts_history_purge",
    "evaluator_tick",
    "groups_flush",
    "groups_sync",
    "message_build",
    "notification_claim",
    "notification_send",
    "notifications_deliver",
    "receiver_check",
    "receiver_set",
    "receiver_test",
    "route_save",
    "routes_delete",
    "rule_set",
    "rules_ensure",
    "silence_check",
    "silence_create",
    "silence_expire",
    "silence_from_alert",
]
