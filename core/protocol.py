"""Typed parsing of the protocol's JSON bodies, and their OpenAPI schema from the same definitions.

A `Shape` names its fields; `Shape.parse` checks a decoded JSON object and returns the typed
values, and the OpenAPI document describes the same `Shape` (the drf-spectacular extension at the
end), so what is documented and what is accepted cannot drift. It replaces DRF serializers on the
worker paths: plain Python, several times cheaper per request (docs/PERFORMANCE.md, "Parsing").

The answers are those the protocol always gave (docs/API.md, "Errors"): DRF's field messages,
word for word, in the same `fields` shape (`{"field": ["..."]}`, a nested object's or a list's
problems as a map of its fields or item indexes), and strict types: a worker that sends 5 for a
string has a bug to hear about.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension

from core.errors import ValidationFailed
from core.text import text_storable

# A field's own problems, or a nested object's / list's problems by field name or item index.
Detail = list[str] | dict[str, Any]
Resolve = Callable[["Shape"], dict[str, Any]]


class Invalid(Exception):
    """A value is not valid; `detail` says why, in the protocol's `fields` shape."""

    def __init__(self, detail: Detail) -> None:
        self.detail = detail
        super().__init__(str(detail))


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
REQUIRED = "This field is required."
NULL = "This field may not be null."
BAD_TEXT = "NUL characters and unpaired surrogates are not allowed."


class Field:
    """One member of a `Shape`: how a present, non-null value is checked, and how it is documented.

    `parse` sees only a value that was sent and is not null (a `Shape` answers those itself), unless
    the field `takes_null`, which then sees null too.
    """

    takes_null = False

    def __init__(self, *, required: bool = True, default: Any = MISSING, allow_null: bool = False,
                 help_text: str = "") -> None:
        self.required = required and default is MISSING
        self.default = default
        self.allow_null = allow_null
        self.help_text = help_text

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        raise NotImplementedError

    def documented(self, resolve: Resolve) -> dict[str, Any]:
        schema = self.schema(resolve)
        if self.allow_null:
            schema = ({"allOf": [schema], "nullable": True} if "$ref" in schema
                      else {**schema, "nullable": True})
        if self.default is not MISSING:
            schema["default"] = self.default
        if self.help_text:
            schema["description"] = self.help_text
        return schema


def _run(field: Field, value: Any) -> Any:
    """Check a value that was sent (it may be null) against `field`."""
    if value is None and not field.takes_null:
        if field.allow_null:
            return None
        raise Invalid([NULL])
    return field.parse(value)


class Text(Field):
    """A string: never a number or a boolean; trimmed unless `trim=False`; blank only when allowed."""

    def __init__(self, *, max_length: int | None = None, allow_blank: bool = False, trim: bool = True,
                 max_bytes: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length, self.allow_blank = max_length, allow_blank
        self.trim, self.max_bytes = trim, max_bytes

    def parse(self, value: Any) -> str:
        if type(value) is not str:
            raise Invalid(["Not a valid string."])
        text = value.strip() if self.trim else value
        if not text if self.trim else not value:
            if not self.allow_blank:
                raise Invalid(["This field may not be blank."])
            return ""
        if not text_storable(value):
            raise Invalid([BAD_TEXT])
        if self.max_bytes is not None and len(text.encode("utf-8", "surrogatepass")) > self.max_bytes:
            raise Invalid([f"At most {self.max_bytes} bytes of text (UTF-8)."])
        if self.max_length is not None and len(text) > self.max_length:
            raise Invalid([f"Ensure this field has no more than {self.max_length} characters."])
        return text

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {"type": "string", **({"maxLength": self.max_length} if self.max_length is not None else {})}


class Integer(Field):
    """A JSON integer (never a boolean or a float), within its bounds."""

    def __init__(self, *, min_value: int | None = None, max_value: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_value, self.max_value = min_value, max_value

    def parse(self, value: Any) -> int:
        if type(value) is not int:
            raise Invalid(["A valid integer is required."])
        if self.max_value is not None and value > self.max_value:
            raise Invalid([f"Ensure this value is less than or equal to {self.max_value}."])
        if self.min_value is not None and value < self.min_value:
            raise Invalid([f"Ensure this value is greater than or equal to {self.min_value}."])
        return value

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.max_value is not None:
            schema["maximum"] = self.max_value
        if self.min_value is not None:
            schema["minimum"] = self.min_value
        return schema


class Boolean(Field):
    def parse(self, value: Any) -> bool:
        if type(value) is not bool:
            raise Invalid(["Must be a valid boolean."])
        return value

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {"type": "boolean"}


class UUIDValue(Field):
    """A UUID in any of its text forms (or, as DRF always took it, its integer)."""

    def parse(self, value: Any) -> uuid.UUID:
        try:
            if type(value) is str:
                return uuid.UUID(hex=value)
            if isinstance(value, int):
                return uuid.UUID(int=value)
        except ValueError:
            pass
        raise Invalid(["Must be a valid UUID."])

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {"type": "string", "format": "uuid"}


class Choice(Field):
    def __init__(self, choices: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = list(choices)
        self._values = {choice: choice for choice in self.choices}

    def parse(self, value: Any) -> str:
        try:
            return self._values[str(value)]
        except KeyError:
            raise Invalid([f'"{value}" is not a valid choice.']) from None

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        # The enum becomes its own component (drf-spectacular's enum hook), described value by value.
        return {"enum": self.choices, "type": "string",
                "description": "\n".join(f"* `{choice}` - {choice}" for choice in self.choices)}


class ListOf(Field):
    def __init__(self, child: Field, *, min_length: int | None = None, max_length: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.child, self.min_length, self.max_length = child, min_length, max_length

    def parse(self, value: Any) -> list[Any]:
        if type(value) is not list:
            raise Invalid([f'Expected a list of items but got type "{type(value).__name__}".'])
        items: list[Any] = []
        errors: dict[str, Any] = {}
        for index, item in enumerate(value):
            try:
                items.append(_run(self.child, item))
            except Invalid as exc:
                errors[str(index)] = exc.detail
        if errors:
            raise Invalid(errors)
        if self.max_length is not None and len(items) > self.max_length:
            raise Invalid([f"Ensure this field has no more than {self.max_length} elements."])
        if self.min_length is not None and len(items) < self.min_length:
            raise Invalid([f"Ensure this field has at least {self.min_length} elements."])
        return items

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": self.child.documented(resolve)}
        if self.max_length is not None:
            schema["maxItems"] = self.max_length
        if self.min_length is not None:
            schema["minItems"] = self.min_length
        return schema


def json_storable_problem(value: Any, depth: int = 0, *, max_depth: int = 20) -> str | None:
    """What PostgreSQL's jsonb (or UTF-8) would refuse in a JSON value, or None.

    NUL characters and lone surrogates, nesting deeper than `max_depth`, keys that are not strings,
    numbers that are not finite, values that are not JSON. The one check of every free-form JSON
    field the protocol stores (job payloads, metrics, a lead's `extra`).
    """
    if depth > max_depth:
        return "Nested too deeply."
    if isinstance(value, str):
        return None if text_storable(value) else BAD_TEXT
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "Keys must be strings."
            problem = (json_storable_problem(key, depth + 1, max_depth=max_depth)
                       or json_storable_problem(item, depth + 1, max_depth=max_depth))
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for item in value:
            problem = json_storable_problem(item, depth + 1, max_depth=max_depth)
            if problem:
                return problem
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "Numbers must be finite."
    if value is None or isinstance(value, bool | int | float):
        return None
    return "Must hold only JSON values."


class JSONValue(Field):
    """Any JSON value the database can store, of at most `max_bytes` once encoded."""

    def __init__(self, *, max_bytes: int = 16_384, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes

    def parse(self, value: Any) -> Any:
        problem = json_storable_problem(value)
        if problem:
            raise Invalid([problem])
        if len(json.dumps(value, ensure_ascii=False).encode()) > self.max_bytes:
            raise Invalid([f"Larger than {self.max_bytes} bytes."])
        return value

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {}


class JSONObject(JSONValue):
    """A JSON object the database can store, of at most `max_bytes` once encoded."""

    def parse(self, value: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise Invalid([f'Expected a dictionary of items but got type "{type(value).__name__}".'])
        return super().parse(value)

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": {}}


class Raw(Field):
    """A value handed on unchecked, null included, for a checker of its own (a report's leads)."""

    takes_null = True

    def __init__(self, *, schema: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._schema = schema

    def parse(self, value: Any) -> Any:
        return value

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return dict(self._schema)


class Nested(Field):
    """A JSON object of another `Shape`."""

    def __init__(self, shape: Shape, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shape = shape

    def parse(self, value: Any) -> dict[str, Any]:
        return self.shape.parse(value)

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return resolve(self.shape)


class Shape:
    """A JSON object of named fields; its name is its OpenAPI component's.

    `check`, when given, sees the parsed values once every field is valid, and raises
    `Invalid([...])` for a problem of the whole object (answered as `non_field_errors`).
    """

    def __init__(self, name: str, fields: dict[str, Field],
                 check: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.name, self.fields, self.check = name, fields, check
        self._items = tuple(fields.items())

    def with_fields(self, name: str, **fields: Field) -> Shape:
        """This shape with more fields, under another name."""
        return Shape(name, {**self.fields, **fields}, self.check)

    def parse(self, data: Any) -> dict[str, Any]:
        if type(data) is not dict:
            raise Invalid({"non_field_errors": [
                f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]})
        values: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for name, field in self._items:
            value = data.get(name, MISSING)
            if value is MISSING:
                if field.required:
                    errors[name] = [REQUIRED]
                elif field.default is not MISSING:
                    values[name] = field.default
                continue
            try:
                values[name] = _run(field, value)
            except Invalid as exc:
                errors[name] = exc.detail
        if errors:
            raise Invalid(errors)
        if self.check is not None:
            try:
                self.check(values)
            except Invalid as exc:
                raise Invalid({"non_field_errors": exc.detail}) from None
        return values

    def openapi(self, resolve: Resolve) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: field.documented(resolve) for name, field in self.fields.items()},
        }
        required = sorted(name for name, field in self.fields.items() if field.required)
        if required:
            schema["required"] = required
        return schema


NOT_AN_OBJECT = {"non_field_errors": ["Expected a JSON object."]}


def body_parse(shape: Shape, data: Any) -> dict[str, Any]:
    """A request body of `shape`, or the protocol's 422 with what is wrong, field by field."""
    if type(data) is not dict:
        raise ValidationFailed("The body must be a JSON object.", fields=NOT_AN_OBJECT)
    try:
        return shape.parse(data)
    except Invalid as exc:
        raise ValidationFailed(fields=exc.detail if isinstance(exc.detail, dict) else
                               {"non_field_errors": exc.detail}) from None


class ShapeSchema(OpenApiSerializerExtension):
    """Documents a `Shape` given to `extend_schema(request=...)` as the component of its name."""

    target_class = Shape
    match_subclasses = True

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return str(self.target.name)

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        def resolve(shape: Shape) -> dict[str, Any]:
            return dict(auto_schema.resolve_serializer(shape, direction).ref)

        return dict(self.target.openapi(resolve))
