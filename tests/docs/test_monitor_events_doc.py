"""docs/API.md lists every monitor event with the exact fields core/events.py declares."""

from __future__ import annotations

from pathlib import Path

from core.events import EVENT_TYPES, event_types_markdown

API_MD = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def test_api_doc_holds_the_generated_event_table():
    text = API_MD.read_text(encoding="utf-8")
    start = text.index("<!-- monitor-events:start -->") + len("<!-- monitor-events:start -->")
    end = text.index("<!-- monitor-events:end -->")
    assert text[start:end].strip() == event_types_markdown(), (
        "docs/API.md's event table is out of date: paste core.events.event_types_markdown() between "
        "the monitor-events markers")


def test_every_event_type_is_in_the_table():
    table = event_types_markdown()
    for name, spec in EVENT_TYPES.items():
        assert f"| `{name}` |" in table
        for field in spec.fields:
            assert f"`{field}`" in table
