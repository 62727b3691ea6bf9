"""Admin › Demo inbox: what `make run`'s local receiver got, as Slack, Teams and email would show it.

Read-only: the evaluator writes these rows when it delivers to a demo receiver (alerts/notifiers.py).
Each message is shown rendered (the Slack blocks' texts, the Teams card's texts and facts, the email)
with the raw JSON body below for copying.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from alerts.models import DemoMessage
from core.admin_tools import ReadOnlyModelAdmin

BOX = "border:1px solid var(--hairline-color);border-radius:6px;padding:8px 12px;margin:4px 0;max-width:60em"


def _slack_texts(block: dict[str, Any]) -> list[str]:
    texts = [block.get("text", {}).get("text", "")] if isinstance(block.get("text"), dict) else []
    texts += [field.get("text", "") for field in block.get("fields", [])]
    texts += [element.get("text", "") for element in block.get("elements", [])]
    return [text for text in texts if text]


def slack_html(body: dict[str, Any]) -> SafeString:
    """The Slack message as a reader sees it: the header bold, each section and its fields below."""
    rows = []
    for block in body.get("blocks", []):
        texts = _slack_texts(block)
        if not texts:
            continue
        if block.get("type") == "header":
            rows.append(format_html("<p><strong>{}</strong></p>", texts[0]))
        else:
            rows.append(format_html("<p>{}<br><small>{}</small></p>", texts[0], " · ".join(texts[1:])))
    return format_html('<div class="demo-slack" style="{}">{}</div>', BOX,
                       format_html_join("", "{}", ((row,) for row in rows)))


def teams_html(body: dict[str, Any]) -> SafeString:
    """The Teams card as a reader sees it: its text blocks and fact sets."""
    rows = []
    for attachment in body.get("attachments", []):
        for item in attachment.get("content", {}).get("body", []):
            if item.get("type") == "TextBlock":
                weight = "bold" if item.get("weight") == "Bolder" else "normal"
                rows.append(format_html('<p style="font-weight:{}">{}</p>', weight, item.get("text", "")))
            elif item.get("type") == "FactSet":
                rows.append(format_html("<p><small>{}</small></p>", format_html_join(
                    " · ", "{}: {}", ((fact["title"], fact["value"]) for fact in item.get("facts", [])))))
    return format_html('<div class="demo-teams" style="{}">{}</div>', BOX,
                       format_html_join("", "{}", ((row,) for row in rows)))


def raw_json(value: Any) -> SafeString:
    return format_html("<details><summary>raw body</summary><pre>{}</pre></details>",
                       json.dumps(value, indent=2, ensure_ascii=False))


@admin.register(DemoMessage)
class DemoMessageAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "status", "summary", "receiver")
    list_filter = ("status", "receiver")
    date_hierarchy = "created_at"
    search_fields = ("summary",)
    fields = readonly_fields = ("created_at", "receiver", "status", "summary", "as_slack", "as_teams",
                                "as_email")

    @admin.display(description="Slack would show")
    def as_slack(self, message: DemoMessage) -> SafeString:
        return format_html("{}{}", slack_html(message.slack), raw_json(message.slack))

    @admin.display(description="Teams would show")
    def as_teams(self, message: DemoMessage) -> SafeString:
        return format_html("{}{}", teams_html(message.teams), raw_json(message.teams))

    @admin.display(description="Email would read")
    def as_email(self, message: DemoMessage) -> SafeString:
        return format_html('<div class="demo-email" style="{}"><p><strong>Subject: {}</strong></p>'
                           '<pre style="white-space:pre-wrap">{}</pre></div>', BOX, message.email_subject,
                           message.email_body)
