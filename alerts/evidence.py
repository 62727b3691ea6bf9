"""The evidence an alert about failing jobs carries, the links every notification carries, and when an
acknowledged alert counts as changed (docs/RUNBOOK.md, "Alerts": "Evidence" and "Acknowledging").

Evidence is read through the queue's selector (`failed_attempts_evidence`) over the rule's own window
and the alert's scope (its provider or worker label): the top failure reasons with counts, the
releases (channel and version the workers report) and the workers involved, the newest screenshot and
the newest attempt with a log tail. Only codes, versions and ids: the screenshot and the log tail are
links to staff-only admin pages, never part of a message.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.conf import settings
from django.urls import reverse

from alerts.models import RuleKind
from queueing import selectors as queue_selectors

# The window each failing-jobs rule looks back over (the rule's own, alerts/rules.py).
EVIDENCE_WINDOWS_S: dict[str, float] = {
    RuleKind.ERROR_RATE: 300,
    RuleKind.RETRY_SPIKE: 600,
    RuleKind.DLQ_GROWTH: 600,
    RuleKind.BREAKER_OPEN: 600,
}
EVIDENCE_KINDS = frozenset({*EVIDENCE_WINDOWS_S, RuleKind.ZERO_RESULTS})
# Rules whose value is a time that grows by itself while the alert fires: it is no change.
TIME_VALUED_KINDS = frozenset({RuleKind.HEARTBEAT_MISSING})


def evidence_read(*, kind: str, labels: dict[str, str], threshold: float, now: dt.datetime) -> dict[str, Any]:
    """The evidence of one alert of a failing-jobs rule now ({} for the other rules)."""
    if kind not in EVIDENCE_KINDS:
        return {}
    if kind == RuleKind.ZERO_RESULTS:
        window_s, zero_results = threshold * 60, True
    else:
        window_s, zero_results = EVIDENCE_WINDOWS_S[kind], False
    found = queue_selectors.failed_attempts_evidence(
        since=now - dt.timedelta(seconds=window_s), provider=labels.get("provider"),
        worker_id=labels.get("worker"), zero_results=zero_results)
    found["window_s"] = int(window_s)
    return found


def evidence_lines(evidence: dict[str, Any]) -> list[str]:
    """The evidence as short lines of text, the same in every format."""
    if not evidence or not evidence.get("attempts"):
        return []
    minutes = max(1, round(evidence.get("window_s", 0) / 60))
    lines = [f"{evidence['attempts']} attempt(s) in {minutes} min. Top reasons: "
             + ", ".join(f"{code} x{count}" for code, count in evidence["reasons"])]
    if evidence["releases"]:
        lines.append("Releases: " + ", ".join(
            f"{version or '(unknown)'} on {channel or '(no channel)'} x{count}"
            for channel, version, count in evidence["releases"]))
    if evidence["workers"]:
        lines.append("Workers: " + ", ".join(f"{worker} x{count}" for worker, count in evidence["workers"]))
    return lines


def absolute_url(path: str) -> str:
    """`path` under LEADOPS_PUBLIC_URL (the path alone when it is not set: alerts.W002)."""
    return f"{settings.LEADOPS_PUBLIC_URL}{path}"


def alert_links(*, alert_id: int, evidence: dict[str, Any]) -> dict[str, str]:
    """The staff-only admin pages a notification links to for one alert."""
    links = {
        "alert": absolute_url(reverse("admin:alerts_alert_change", args=[alert_id])),
        "acknowledge": absolute_url(reverse("admin:alerts_alert_acknowledge", args=[alert_id])),
        "silence_1h": absolute_url(reverse("admin:alerts_alert_silence_hour", args=[alert_id])),
    }
    if evidence.get("screenshot_id"):
        links["screenshot"] = absolute_url(
            reverse("admin:queueing_attemptevidence_file", args=[evidence["screenshot_id"]]))
    if evidence.get("log_tail_attempt_id"):
        links["log_tail"] = absolute_url(
            reverse("admin:queueing_jobattempt_change", args=[evidence["log_tail_attempt_id"]]))
    return links


LINK_TITLES = {"acknowledge": "Acknowledge", "silence_1h": "Silence 1 h", "screenshot": "Newest screenshot",
               "log_tail": "Log tail", "alert": "Alert"}


# ----- acknowledgement: what counts as a change ------------------------------------------------


def _value_class(kind: str, value: float | None) -> int:
    """The power-of-two class of the value (1, 2-3, 4-7, ...; shares 0.5-0.99 are one class)."""
    if kind in TIME_VALUED_KINDS or value is None or value <= 0:
        return -99
    return math.floor(math.log2(value))


def change_class(*, kind: str, severity: str, value: float | None, evidence: dict[str, Any]) -> str:
    """What an acknowledgement holds to: severity | value class | top reason | top release."""
    reasons = evidence.get("reasons") or []
    releases = evidence.get("releases") or []
    reason = reasons[0][0] if reasons else ""
    release = f"{releases[0][1]}@{releases[0][0]}" if releases else ""
    return f"{severity}|{_value_class(kind, value)}|{reason}|{release}"


def change_of(acknowledged: str, current: str) -> str:
    """Why an acknowledged alert counts as changed ("" when it has not): another severity, a higher
    value class, another top reason or another top release. A value that falls is no change."""
    if not acknowledged:
        return ""
    was, now = acknowledged.split("|", 3), current.split("|", 3)
    if was[0] != now[0]:
        return f"severity {was[0]} -> {now[0]}"
    if int(now[1]) > int(was[1]):
        return "the value grew past twice its class"
    if was[2] != now[2]:
        return f"top reason {was[2] or '-'} -> {now[2] or '-'}"
    if was[3] != now[3]:
        return f"top release {was[3] or '-'} -> {now[3] or '-'}"
    return ""
