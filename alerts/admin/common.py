"""What the alerting admin pages share: badges, label chips, one-click POST buttons, matcher text."""

from __future__ import annotations

from django import forms
from django.utils.html import format_html, format_html_join

from alerts.matchers import matcher_parse
from alerts.services import AlertsError

STATE_COLOURS = {
    "firing": "#c62828",
    "pending": "#ef6c00",
    "resolved": "#2e7d32",
    "active": "#c62828",
    "expired": "#757575",
    "waiting for its window": "#ef6c00",
}
WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


# What an operator types most: one rule's alerts for one provider (labels: docs/RUNBOOK.md, "Alerts").
MATCHERS_EXAMPLE = "alertname=breaker_open\nprovider=maps"


def matchers_field(*, required: bool, help_end: str) -> forms.CharField:
    """The matchers of a route or silence, one per line, with an example in the empty box."""
    return forms.CharField(
        label="Matchers",
        required=required,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": MATCHERS_EXAMPLE}),
        help_text=(f"One per line: label=value, label!=value, label=~regex, label!~regex{help_end} "
                   "For example alertname=breaker_open and provider=maps on two lines mute the breaker "
                   "alerts of provider maps; severity=~warning|info mutes the less urgent ones."),
    )


def badge_html(text: str) -> str:
    return format_html(
        '<span style="display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;'
        'background:{};font-weight:600">{}</span>',
        STATE_COLOURS.get(text, "#546e7a"),
        text,
    )


def labels_html(labels: dict[str, str]) -> str:
    return format_html_join(" ", '<code style="white-space:nowrap">{}={}</code>', sorted(labels.items()))


def post_button(url: str, text: str) -> str:
    # `formaction` submits the change page's own form (and its CSRF token) to `url`.
    return format_html(
        '<button type="submit" class="button" formaction="{}" formmethod="post" formnovalidate>{}</button>',
        url,
        text,
    )


def matchers_from_text(text: str) -> list[dict[str, str]]:
    return [matcher_parse(line) for line in text.splitlines() if line.strip()]


def form_error_add(form: forms.BaseForm, exc: AlertsError, *, renamed: dict[str, str] | None = None) -> None:
    """Show a service's refusal on the form, beside its field when the form has that field."""
    field = (renamed or {}).get(exc.field or "", exc.field)
    message = str(exc)
    form.add_error(field if field in form.fields else None, f"{message[:1].upper()}{message[1:]}.")
