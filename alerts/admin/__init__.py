"""Admin of alerting: rules, alerts with their labels and timeline, silences, routes, receivers, the log.

Alerts, notifications and delivery attempts are written by the evaluator only: read-only here.
One-click buttons on the change pages (silence this alert, expire this silence, send a test) submit
the page's own form, with its CSRF token, to a small POST-only view that checks the permission, calls
the service, and records the action in the admin log.
One module per page; importing them registers the ModelAdmins.
"""

from alerts.admin import alerts, deliveries, demo_inbox, receivers, routes, rules, silences  # noqa: F401
