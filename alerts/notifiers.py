"""How a notification is written and sent to each kind of receiver (payloads: docs/RUNBOOK.md, Alerts).

A notification's `message` is built once when its group is flushed (`message_build`); each notifier
renders it in its receiver's format and sends it over the real protocol: HTTP POST with httpx (Slack,
Teams Workflows, the signed webhook, an Alertmanager's API) or SMTP through Django's mail backend.
A send returns an `Outcome`; it never raises for the receiver's failures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone

from alerts.crypto import decrypt_text
from alerts.evidence import LINK_TITLES
from alerts.models import DemoMessage, Receiver, ReceiverKind
from core.setting_checks import email_backend_sends

HTTP_TIMEOUT_S = 10.0
# Mail backends that print a message or drop it: what they "send" reaches no one, so it is never
# recorded as delivered (docs/RUNBOOK.md, "Setting up").
PRINTING_EMAIL_BACKENDS = frozenset({"django.core.mail.backends.console.EmailBackend",
                                     "django.core.mail.backends.dummy.EmailBackend"})
SIGNATURE_HEADER = "X-LeadOps-Signature"
# Alertmanager writes a firing alert's end as the zero time.
ZERO_TIME = "0001-01-01T00:00:00Z"
# Messages name at most this many alerts (Slack allows 50 blocks; a Teams card must stay under 28 KB).
MAX_LISTED = 20


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str
    retry_after_s: float | None
    latency_ms: int

    @classmethod
    def failed(cls, exc: BaseException, *, started: float) -> Outcome:
        """An attempt that never got an answer: the error's type and text, and how long it took."""
        return cls(False, None, f"{type(exc).__name__}: {exc}"[:500], None,
                   int((time.perf_counter() - started) * 1000))


def iso(moment: Any) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else ZERO_TIME


def summary_line(message: dict[str, Any]) -> str:
    firing = sum(1 for alert in message["alerts"] if alert["status"] == "firing")
    name = message["common_labels"].get("alertname") or message["group_labels"].get("alertname") or "alerts"
    count = firing if message["status"] == "firing" else len(message["alerts"])
    return f"[{message['status'].upper()}:{count}] {name}"


def _alert_line(alert: dict[str, Any]) -> str:
    summary = alert["annotations"].get("summary", "")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()) if k != "alertname")
    return f"{alert['status'].upper()} {alert['labels'].get('alertname', '')}: {summary} ({labels})"


def _evidence_text(alert: dict[str, Any]) -> list[str]:
    """The alert's evidence lines and who acknowledged it (messages built before evidence have none)."""
    lines = list(alert.get("evidence") or [])
    if alert.get("acknowledged_by"):
        lines.append(f"Acknowledged by {alert['acknowledged_by']}: no repeats until it resolves or changes")
    return lines


def _links(alert: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, URL) of the alert's admin links, actions first (alerts/evidence.py, LINK_TITLES)."""
    links = alert.get("links") or {}
    return [(title, links[key]) for key, title in LINK_TITLES.items() if links.get(key)]


def _absolute(url: str) -> bool:
    # Chat buttons need an absolute URL: without LEADOPS_PUBLIC_URL the paths are shown as text.
    return url.startswith(("https://", "http://"))


# ----- payloads ---------------------------------------------------------------------------------


# Slack's control characters in every text object, written as the entities Slack decodes for display
# ("Escaping text" in Slack's formatting reference); nothing else is encoded.
SLACK_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Slack's limits: a header's text, a section's text, one of a section's fields, and fields per section.
SLACK_HEADER_MAX, SLACK_TEXT_MAX, SLACK_FIELD_MAX, SLACK_FIELDS_MAX = 150, 3000, 2000, 10


def slack_escape(text: str, limit: int | None = None) -> str:
    """`text` with &, < and > escaped for Slack, cut at `limit` characters without splitting an entity."""
    pieces: list[str] = []
    size = 0
    for char in text:
        piece = SLACK_ENTITIES.get(char, char)
        if limit is not None and size + len(piece) > limit:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)


def _slack_plain(text: str, limit: int) -> dict[str, Any]:
    # plain_text: Slack applies no mrkdwn, so a label with _ or * shows as written; no emoji codes either.
    return {"type": "plain_text", "text": slack_escape(text, limit), "emoji": False}


def _slack_alert_blocks(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert's section (its line, evidence and labels) and its link buttons: two blocks at most."""
    links = _links(alert)
    text_links = [f"{title}: {url}" for title, url in links if not _absolute(url)]
    block = _slack_alert_block(alert, extra=_evidence_text(alert) + text_links)
    buttons = [{"type": "button", "text": _slack_plain(title, 75), "url": url, "action_id": f"link-{index}"}
               for index, (title, url) in enumerate(links) if _absolute(url)]
    return [block, {"type": "actions", "elements": buttons}] if buttons else [block]


def _slack_alert_block(alert: dict[str, Any], *, extra: list[str]) -> dict[str, Any]:
    summary = alert["annotations"].get("summary", "")
    line = "\n".join([f"{alert['status'].upper()} {alert['labels'].get('alertname', '')}: {summary}", *extra])
    labels = [f"{k}={v}" for k, v in sorted(alert["labels"].items()) if k != "alertname"]
    if len(labels) > SLACK_FIELDS_MAX:
        labels = [*labels[:SLACK_FIELDS_MAX - 1], ", ".join(labels[SLACK_FIELDS_MAX - 1:])]
    block: dict[str, Any] = {"type": "section", "text": _slack_plain(line, SLACK_TEXT_MAX)}
    if labels:
        block["fields"] = [_slack_plain(label, SLACK_FIELD_MAX) for label in labels]
    return block


def slack_payload(message: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming webhook: `text` (the fallback and the notification line) and Block Kit `blocks`.

    What comes from alerts (names, summaries, labels) goes in plain_text, escaped (docs/RUNBOOK.md,
    "Setting up"): Slack shows it as written, whatever `_`, `*`, `&`, `<` or `>` it holds.
    """
    title = summary_line(message)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _slack_plain(title, SLACK_HEADER_MAX)}]
    for alert in message["alerts"][:MAX_LISTED]:
        blocks += _slack_alert_blocks(alert)
    if len(message["alerts"]) > MAX_LISTED:
        more = f"and {len(message['alerts']) - MAX_LISTED} more"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(more)}]})
    return {"text": slack_escape(title), "blocks": blocks}


def teams_payload(message: dict[str, Any]) -> dict[str, Any]:
    """Teams Workflows webhook: one Adaptive Card (version 1.4, the highest Teams accepts)."""
    firing = message["status"] == "firing"
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": summary_line(message),
            "weight": "Bolder",
            "size": "Medium",
            "color": "Attention" if firing else "Good",
            "wrap": True,
        }
    ]
    for alert in message["alerts"][:MAX_LISTED]:
        body.append({"type": "TextBlock", "text": alert["annotations"].get("summary", ""), "wrap": True})
        links = _links(alert)
        lines = _evidence_text(alert) + [f"{title}: {url}" for title, url in links if not _absolute(url)]
        if lines:
            body.append({"type": "TextBlock", "text": "\n\n".join(lines), "wrap": True, "isSubtle": True})
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": key, "value": str(value)} for key, value in sorted(alert["labels"].items())
                ],
            }
        )
        buttons = [{"type": "Action.OpenUrl", "title": title, "url": url}
                   for title, url in links if _absolute(url)]
        if buttons:
            body.append({"type": "ActionSet", "actions": buttons})
    if len(message["alerts"]) > MAX_LISTED:
        body.append(
            {"type": "TextBlock", "text": f"and {len(message['alerts']) - MAX_LISTED} more", "wrap": True}
        )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def webhook_payload(message: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's webhook JSON, version 4."""
    return {
        "version": "4",
        "groupKey": message["group_key"],
        "truncatedAlerts": 0,
        "status": message["status"],
        "receiver": message["receiver"],
        "groupLabels": message["group_labels"],
        "commonLabels": message["common_labels"],
        "commonAnnotations": message["common_annotations"],
        "externalURL": message.get("external_url", ""),
        "alerts": [
            {
                "status": a["status"],
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": a["startsAt"],
                "endsAt": a["endsAt"],
                "generatorURL": (a.get("links") or {}).get("alert", a.get("generatorURL", "")),
                "fingerprint": a["fingerprint"],
                # LeadOps' additions (receivers that do not know them ignore them): docs/RUNBOOK.md.
                "evidence": a.get("evidence") or [],
                "acknowledgedBy": a.get("acknowledged_by", ""),
                "links": a.get("links") or {},
            }
            for a in message["alerts"]
        ],
    }


def alertmanager_payload(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Alertmanager's `POST /api/v2/alerts` body: the alerts themselves; it does its own routing.

    A firing alert carries an end a few group intervals ahead: the portal re-posts firing alerts every
    group interval (as Prometheus re-sends), so the Alertmanager resolves them by itself if we stop.
    """
    return [
        {
            "labels": a["labels"],
            "annotations": a["annotations"],
            "startsAt": a["startsAt"],
            "endsAt": a["endsAt"] if a["status"] == "resolved" else a["validUntil"],
            # The alert's admin page when it is an absolute URL (Alertmanager shows it as "Source").
            "generatorURL": next((url for url in [(a.get("links") or {}).get("alert", "")] if _absolute(url)),
                                 a.get("generatorURL", "")),
        }
        for a in message["alerts"]
    ]


def email_subject(message: dict[str, Any]) -> str:
    return f"{summary_line(message)} (LeadOps)"


def email_body(message: dict[str, Any]) -> str:
    lines = [summary_line(message), ""]
    for alert in message["alerts"]:
        lines.append(_alert_line(alert))
        lines.append(
            f"  since {alert['startsAt']}"
            + (f", resolved {alert['endsAt']}" if alert["status"] == "resolved" else "")
        )
        lines += [f"  {line}" for line in _evidence_text(alert)]
        lines += [f"  {title}: {url}" for title, url in _links(alert)]
    lines += ["", "What to do first: docs/RUNBOOK.md, section Alerts."]
    return "\n".join(lines)


# ----- sending ----------------------------------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    started = time.perf_counter()
    try:
        response = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=HTTP_TIMEOUT_S,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return Outcome.failed(exc, started=started)
    latency_ms = int((time.perf_counter() - started) * 1000)
    ok = 200 <= response.status_code < 300
    error = "" if ok else f"HTTP {response.status_code}: {response.text[:200]}"
    return Outcome(
        ok, response.status_code, error, _retry_after(response.headers.get("Retry-After")), latency_ms
    )


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(receiver: Receiver, message: dict[str, Any]) -> Outcome:
    """Deliver `message` to `receiver` once; the caller records the attempt and retries."""
    if receiver.kind == ReceiverKind.EMAIL:
        return _send_email(receiver, message)
    if receiver.kind == ReceiverKind.DEMO:
        return _send_demo(receiver, message)
    url = decrypt_text(receiver.url_encrypted)
    headers: dict[str, str] = {}
    if receiver.kind == ReceiverKind.SLACK:
        body = _json_bytes(slack_payload(message))
    elif receiver.kind == ReceiverKind.TEAMS:
        body = _json_bytes(teams_payload(message))
    elif receiver.kind == ReceiverKind.ALERTMANAGER:
        body = _json_bytes(alertmanager_payload(message))
        if not url.rstrip("/").endswith("/api/v2/alerts"):
            url = url.rstrip("/") + "/api/v2/alerts"
    else:
        body = _json_bytes(webhook_payload(message))
        secret = decrypt_text(receiver.secret_encrypted)
        if secret:
            headers[SIGNATURE_HEADER] = webhook_signature(secret, body)
    return _post(url, body, headers)


def email_refusal() -> str:
    """Why an email receiver cannot work here ("" when it can): in production, a mail backend that
    sends nothing (EMAIL_URL unset or not a mail server; docs/DEPLOY.md, "Email")."""
    if settings.LEADOPS_DEVELOPMENT or email_backend_sends():
        return ""
    return (f"email needs a mail server: EMAIL_BACKEND is {settings.EMAIL_BACKEND}, which sends nothing; "
            "set EMAIL_URL to the mail relay (docs/DEPLOY.md, Alerts, 'Email')")


def _send_email(receiver: Receiver, message: dict[str, Any]) -> Outcome:
    started = time.perf_counter()
    refusal = email_refusal()
    if refusal:
        return Outcome(False, None, f"not sent: {refusal}", None, 0)
    recipients = [address.strip() for address in receiver.addresses.split(",") if address.strip()]
    try:
        connection = get_connection(timeout=getattr(settings, "EMAIL_TIMEOUT", None) or HTTP_TIMEOUT_S)
        EmailMessage(
            subject=email_subject(message),
            body=email_body(message),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
            connection=connection,
        ).send()
    except Exception as exc:  # smtplib, socket and backend errors alike: the attempt failed
        return Outcome.failed(exc, started=started)
    latency_ms = int((time.perf_counter() - started) * 1000)
    if settings.EMAIL_BACKEND in PRINTING_EMAIL_BACKENDS:
        # Development: the message is on the evaluator's console for a developer to read; nobody got it.
        return Outcome(False, None, f"not delivered: EMAIL_BACKEND is {settings.EMAIL_BACKEND}, which only "
                       "prints or drops mail; set EMAIL_URL to a mail server", None, latency_ms)
    return Outcome(True, None, "", None, latency_ms)


def demo_refusal() -> str:
    """Why a demo receiver cannot work here ("" when it can): it is for development only."""
    if settings.LEADOPS_DEVELOPMENT:
        return ""
    return "the demo inbox is for development (make run) only; use a real receiver in production"


def _send_demo(receiver: Receiver, message: dict[str, Any]) -> Outcome:
    """Keep the message as Slack, Teams and email would have received it (Admin › Demo inbox)."""
    started = time.perf_counter()
    refusal = demo_refusal()
    if refusal:
        return Outcome(False, None, f"not sent: {refusal}", None, 0)
    DemoMessage.objects.create(
        receiver=receiver, created_at=timezone.now(), status=message["status"],
        summary=summary_line(message)[:300], slack=slack_payload(message), teams=teams_payload(message),
        email_subject=email_subject(message)[:300], email_body=email_body(message))
    return Outcome(True, None, "", None, int((time.perf_counter() - started) * 1000))
