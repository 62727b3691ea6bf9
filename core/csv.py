"""One streaming CSV export for every admin: rows written as they are read, formula cells defused."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.http import StreamingHttpResponse

# A cell a spreadsheet would run as a formula. A plain phone such as "+966 50 123 4567" starts with
# "+" too, so "+" and "-" count only when something other than digits and separators follows.
_FORMULA_START = re.compile(r"^[=@\t\r]|^[+\-](?![0-9 ()\-.]*$)")


class _Echo:
    """A file-like object whose write returns the line, for csv.writer inside a generator."""

    def write(self, value: str) -> str:
        return value


def csv_value(value: Any) -> Any:
    """A cell as text a spreadsheet shows and never runs (dates ISO, objects JSON, None empty)."""
    if isinstance(value, dt.date):
        value = value.isoformat()
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif value is None:
        value = ""
    elif not isinstance(value, (int, float, bool, str)):
        value = str(value)
    if isinstance(value, str) and _FORMULA_START.search(value):
        return "'" + value
    return value


def csv_response(*, header: Sequence[str], rows: Iterable[Sequence[Any]],
                 filename: str) -> StreamingHttpResponse:
    """A streamed CSV download: one line per row, never the whole file in memory."""
    writer = csv.writer(_Echo())

    def lines() -> Iterable[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_value(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
