"""Machine values shown to people (docs/RUNBOOK.md, "The admin"): a JSON value (an audit row's
detail, a job's payload, an attempt's error) as labelled fields, never a Python repr; the raw JSON
stays one click away, closed, for copying into a ticket or a shell.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Nested values deeper than this are left to the raw JSON.
MAX_DEPTH = 4


def field_label(key: Any) -> str:
    """`dead_reason` -> "Dead reason", `retry_after_s` -> "Retry after (s)"."""
    text = str(key)
    unit = ""
    for suffix, name in (("_s", "s"), ("_ms", "ms"), ("_pct", "%")):
        if text.endswith(suffix):
            text, unit = text[: -len(suffix)], f" ({name})"
            break
    text = text.replace("_", " ").replace(".", " ").strip()
    return (text[:1].upper() + text[1:] + unit) if text else "-"


def _value_html(value: Any, depth: int) -> SafeString:
    if isinstance(value, dict):
        return _fields_html(value, depth + 1) if value else mark_safe("-")
    if isinstance(value, list):
        if not value:
            return mark_safe("-")
        if all(not isinstance(item, dict | list) for item in value):
            return format_html("{}", ", ".join(_scalar(item) for item in value))
        items = ((_value_html(item, depth),) for item in value)
        return format_html_join("", '<div class="lo-item">{}</div>', items)
    return format_html("{}", _scalar(value))


def _scalar(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _fields_html(value: dict[str, Any], depth: int) -> SafeString:
    if depth > MAX_DEPTH:
        return format_html("<code>{}</code>", raw_json(value))
    rows = format_html_join("", "<dt>{}</dt><dd>{}</dd>",
                            ((field_label(key), _value_html(item, depth)) for key, item in value.items()))
    return format_html('<dl class="lo-fields">{}</dl>', rows)


def raw_json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2, sort_keys=True)


def labelled_fields(value: Any, *, raw: Any = None) -> SafeString:
    """A JSON value as labelled fields (a definition list), with its raw JSON (`raw` when the value
    shown was derived from another) in a closed block."""
    if value in (None, "", {}, []):
        return mark_safe("-")
    shown = _fields_html(value, 1) if isinstance(value, dict) else _value_html(value, 1)
    return format_html('{}<details class="lo-raw"><summary>Raw JSON</summary><pre>{}</pre></details>',
                       shown, raw_json(value if raw is None else raw))


def changes_fields(changes: Any) -> SafeString:
    """An audit row's changes as labelled fields, each "old → new", with the raw JSON."""
    if not isinstance(changes, dict) or not changes:
        return labelled_fields(changes)
    shown = {key: (f"{_short(pair[0], 200)} → {_short(pair[1], 200)}"
                   if isinstance(pair, list | tuple) and len(pair) == 2 else pair)
             for key, pair in changes.items()}
    return labelled_fields(shown, raw=changes)


def changes_text(changes: Any) -> str:
    """An audit row's changes as one line: "Max attempts: 5 → 9; Enabled: yes → no"."""
    if not isinstance(changes, dict) or not changes:
        return "-"
    parts = []
    for key, pair in changes.items():
        if isinstance(pair, list | tuple) and len(pair) == 2:
            parts.append(f"{field_label(key)}: {_short(pair[0])} → {_short(pair[1])}")
        else:
            parts.append(f"{field_label(key)}: {_short(pair)}")
    return "; ".join(parts)


def _short(value: Any, most: int = 60) -> str:
    text = _scalar(value) if not isinstance(value, dict | list) else json.dumps(value, cls=DjangoJSONEncoder,
                                                                                 ensure_ascii=False)
    return text if len(text) <= most else text[: most - 1] + "…"
