"""DRF fields that refuse type coercion: a worker that sends 5 for a string has a bug to hear about."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.text import text_storable


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        _check_text(data)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


def _check_text(text: str) -> None:
    if not text_storable(text):
        raise serializers.ValidationError("NUL characters and unpaired surrogates are not allowed.")


def _check_json_text(value: Any, depth: int = 0) -> None:
    """Refuse what a database cannot store in JSON: NUL characters, lone surrogates, deep nesting."""
    if depth > 20:
        raise serializers.ValidationError("Nested too deeply.")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json_text(key, depth + 1)
            _check_json_text(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_text(item, depth + 1)


class SafeJSONObjectField(serializers.DictField):
    """A JSON object whose text the database can store, of at most `max_bytes` once encoded."""

    def __init__(self, *args: Any, max_bytes: int = 16_384, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        _check_json_text(data)
        import json

        if len(json.dumps(data, ensure_ascii=False).encode()) > self.max_bytes:
            raise serializers.ValidationError(f"Larger than {self.max_bytes} bytes.")
        return data


class SafeJSONValueField(serializers.JSONField):
    def __init__(self, *args: Any, max_bytes: int = 16_384, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        _check_json_text(data)
        import json

        if len(json.dumps(data, ensure_ascii=False).encode()) > self.max_bytes:
            raise serializers.ValidationError(f"Larger than {self.max_bytes} bytes.")
        return super().to_internal_value(data)
