"""Small HTML pieces of the queue's admin pages: state badges and the campaign progress bar."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from queueing.models import (
    AttemptState,
    JobState,
)

JOB_STATE_COLOURS = {
    JobState.QUEUED: "#1565c0",
    JobState.LEASED: "#ef6c00",
    JobState.SUCCEEDED: "#2e7d32",
    JobState.DEAD: "#c62828",
    JobState.CANCELLED: "#757575",
}


ATTEMPT_STATE_COLOURS = {
    AttemptState.RUNNING: "#ef6c00",
    AttemptState.SUCCEEDED: "#2e7d32",
    AttemptState.FAILED: "#c62828",
    AttemptState.LOST: "#ad1457",
    AttemptState.RELEASED: "#757575",
    AttemptState.CANCELLED: "#757575",
}


PROGRESS_COLOURS = (("succeeded", "#2e7d32"), ("dead", "#c62828"), ("cancelled", "#9e9e9e"))


def state_badge(label: str, colour: str) -> SafeString:
    return format_html(
        '<span style="display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;'
        'background:{};font-weight:600;white-space:nowrap">{}</span>',
        colour, label,
    )


def progress_bar(progress: dict[str, int] | None) -> SafeString:
    """A stacked bar of succeeded / dead / cancelled over all jobs, with the numbers under it."""
    total = (progress or {}).get("total", 0)
    if not progress or not total:
        return format_html('<span style="color:var(--body-quiet-color)">{}</span>', "no jobs")
    segments = format_html_join(
        "", '<span style="width:{}%;background:{}" title="{} {}"></span>',
        ((f"{100 * progress[key] / total:.2f}", colour, progress[key], key)
         for key, colour in PROGRESS_COLOURS if progress[key]),
    )
    return format_html(
        '<div style="display:flex;width:220px;height:12px;border-radius:3px;overflow:hidden;'
        'background:#e0e0e0" role="img" aria-label="{} of {} jobs finished">{}</div>'
        '<div style="font-size:11px;white-space:nowrap">'
        '<span style="color:#2e7d32">{} succeeded</span> · <span style="color:#c62828">{} dead</span>'
        '{} · {} remaining of {}</div>',
        total - progress["remaining"], total, segments, progress["succeeded"], progress["dead"],
        format_html(" · {} cancelled", progress["cancelled"]) if progress["cancelled"] else "",
        progress["remaining"], total,
    )


def log_tail_html(text: str, *, label: str = "") -> SafeString:
    """A worker's log tail (already masked when stored) as preformatted text, or a dash when none."""
    if not text:
        return format_html("{}", "-")
    return format_html('<div>{}<pre style="{}">{}</pre></div>', label,
                       "max-height:24em;overflow:auto;white-space:pre-wrap;margin:0", text)
