"""Label matchers, as Alertmanager writes them: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.

Regular expressions are anchored at both ends (a full match), like Alertmanager's; a missing label
matches as the empty string.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

OPERATORS = ("=~", "!~", "!=", "=")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MatcherError(ValueError):
    """A matcher that cannot be parsed or whose regular expression does not compile."""


_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


def matcher_parse(text: str) -> dict[str, str]:
    """Parse `name<op>value` into {"name", "op", "value"}; quotes around the value are dropped."""
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(f"not a matcher (use LABEL=VALUE, LABEL!=VALUE, LABEL=~RE or LABEL!~RE): {text!r}")
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return matcher_check({"name": name, "op": op, "value": value})


def matcher_check(matcher: Any) -> dict[str, str]:
    """Return the matcher when it is well formed, or raise MatcherError saying why not."""
    if not isinstance(matcher, dict) or set(matcher) != {"name", "op", "value"}:
        raise MatcherError('a matcher is {"name", "op", "value"}')
    name, op, value = matcher["name"], matcher["op"], matcher["value"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise MatcherError(f"bad label name {name!r}")
    if op not in OPERATORS:
        raise MatcherError(f"bad operator {op!r} (one of =, !=, =~, !~)")
    if not isinstance(value, str):
        raise MatcherError("a matcher's value is text")
    if op in ("=~", "!~"):
        try:
            _compiled(value)
        except re.error as exc:
            raise MatcherError(f"bad regular expression {value!r}: {exc}") from exc
    return {"name": name, "op": op, "value": value}


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matches(matchers: list[dict[str, str]], labels: dict[str, str]) -> bool:
    """True when `labels` satisfy every matcher (an empty list matches everything)."""
    for matcher in matchers:
        actual = labels.get(matcher["name"], "")
        op, value = matcher["op"], matcher["value"]
        if op == "=":
            ok = actual == value
        elif op == "!=":
            ok = actual != value
        elif op == "=~":
            ok = _compiled(value).fullmatch(actual) is not None
        else:
            ok = _compiled(value).fullmatch(actual) is None
        if not ok:
            return False
    return True


def matchers_text(matchers: list[dict[str, str]]) -> str:
    return ", ".join(f"{m['name']}{m['op']}{m['value']}" for m in matchers)
