"""Gate `alerts`: the seed's alert kinds are on, every one reaches a receiver, each receiver that
would get them delivered lately, and an evaluator is running (docs/PRODUCTION_READINESS.md, "alerts")."""

from __future__ import annotations

import datetime as dt

from alerts import selectors
from leadops.readiness.base import Gate, age_text, changelist_links, problems_line

# The seed's basic alerts: missing heartbeats, error / retry spikes, DLQ growth, stuck jobs.
REQUIRED_KINDS = ["heartbeat_missing", "error_rate", "retry_spike", "dlq_growth", "stuck_jobs"]
DELIVERY_WITHIN = dt.timedelta(days=7)
EVALUATOR_WITHIN = dt.timedelta(minutes=2)


def check(now: dt.datetime) -> Gate:
    evidence = changelist_links("alerts", alertrule="Alert rules", receiver="Receivers",
                                deliveryattempt="Delivery log")
    problems = []
    enabled = selectors.rules_enabled()
    off = [kind for kind in REQUIRED_KINDS if not enabled.get(kind, False)]
    if off:
        problems.append(f"rules off: {', '.join(off)} (alert_rule_set KIND --enable)")
    # A demo inbox (make run's) keeps alerts inside the portal: it tells no one, so it does not count.
    demo = selectors.receiver_names_demo()
    routed_to = selectors.receivers_for_kinds(kinds=REQUIRED_KINDS)
    routed = {kind: [name for name in names if name not in demo] for kind, names in routed_to.items()}
    unrouted = [kind for kind, names in routed.items() if not names]
    if unrouted:
        only_demo = ", ".join(sorted({name for kind in unrouted for name in routed_to[kind]}))
        problems.append("no receiver gets " + ", ".join(unrouted)
                        + (f" (only the demo inbox {only_demo}, which reaches no one)" if only_demo else "")
                        + " (alert_receiver_set NAME --webhook URL, or a route in admin)")
    receivers = sorted({name for names in routed.values() for name in names})
    last = selectors.receiver_last_attempts(names=receivers)
    for name in receivers:
        attempt = last.get(name)
        if attempt is None:
            problems.append(f"receiver {name} never delivered: alert_test {name}")
        elif not attempt["ok"]:
            answer = attempt["status_code"] or attempt["error"]
            problems.append(f"receiver {name}'s last delivery failed ({answer}): "
                            f"fix it, then alert_test {name}")
        elif now - attempt["started_at"] > DELIVERY_WITHIN:
            problems.append(f"receiver {name} delivered nothing in 7 days: alert_test {name}")
    last_run = selectors.evaluator_last_run_at()
    if last_run is None or now - last_run > EVALUATOR_WITHIN:
        since = f"last ran {age_text(now - last_run)} ago" if last_run else "never ran"
        problems.append(f"the alert evaluator {since}: start alerts_evaluate (or the q cluster)")
    detail = {"receivers": receivers, "evaluator_last_run": last_run.isoformat() if last_run else None}
    if problems or last_run is None:
        return Gate("alerts", False, problems_line(problems), evidence, detail)
    return Gate("alerts", True, f"the seed's {len(REQUIRED_KINDS)} alert rules are on and reach "
                f"{len(receivers)} receiver(s), each delivering; the evaluator ran "
                f"{age_text(now - last_run)} ago", evidence, detail)
