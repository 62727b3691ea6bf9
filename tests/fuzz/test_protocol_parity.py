"""The protocol modules parse exactly as the DRF serializers they replaced: same values, same 422s.

The serializers below are the ones the worker endpoints used before the protocol modules (kept here
only as the reference, with the strict fields of the time). hypothesis sends both the same bodies,
near-valid and wrong alike (bounds, blanks, whitespace, nulls, wrong types, nesting, NUL
characters), and every answer must match: the parsed values, or the error's status, code, message
and `fields`, word for word (docs/API.md, "Errors"). Sizes from LEADOPS_FUZZ_EXAMPLES.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from core.errors import ValidationFailed, exception_handler
from core.protocol import Choice, Field, Integer, Shape, Text, body_parse
from core.text import text_storable
from queueing import protocol as queue_protocol
from releases_app import protocol as releases_protocol
from releases_app.models import UpdateStage
from workers_mgmt import protocol as fleet_protocol

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("LEADOPS_FUZZ_EXAMPLES", "300"))


# --- the reference: DRF's strict fields and the serializers of the time ---------------------------


def _check_text(text: str) -> None:
    if not text_storable(text):
        raise serializers.ValidationError("NUL characters and unpaired surrogates are not allowed.")


def _check_json_text(value: Any, depth: int = 0) -> None:
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


class SafeJSONObjectField(serializers.DictField):
    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        _check_json_text(data)
        if len(json.dumps(data, ensure_ascii=False).encode()) > 16_384:
            raise serializers.ValidationError("Larger than 16384 bytes.")
        return data


class SafeJSONValueField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> Any:
        _check_json_text(data)
        if len(json.dumps(data, ensure_ascii=False).encode()) > 16_384:
            raise serializers.ValidationError("Larger than 16384 bytes.")
        return super().to_internal_value(data)


class LogTailField(StrictCharField):
    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        if len(text.encode("utf-8", "surrogatepass")) > 16 * 1024:
            raise serializers.ValidationError("At most 16384 bytes of text (UTF-8).")
        return text


class HeartbeatIn(serializers.Serializer):
    version = StrictCharField(max_length=64)
    status = StrictCharField(max_length=32)
    running_jobs = StrictIntegerField(min_value=0, max_value=100_000)
    metrics = SafeJSONObjectField(required=False)
    self_test = SafeJSONValueField(required=False)


class PullIn(serializers.Serializer):
    max = StrictIntegerField(min_value=1, max_value=50, required=False, default=1)
    providers = serializers.ListField(child=StrictCharField(max_length=63), required=False,
                                      allow_empty=True, max_length=100)
    wait_s = StrictIntegerField(min_value=0, max_value=60, required=False, default=0)


class ExchangePullIn(serializers.Serializer):
    max = StrictIntegerField(min_value=0, max_value=50, required=False, default=1)
    providers = serializers.ListField(child=StrictCharField(max_length=63), required=False,
                                      allow_empty=True, max_length=100)


class ExtendIn(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    seconds = StrictIntegerField(min_value=5, max_value=12 * 3600, required=False)


class ReleaseIn(serializers.Serializer):
    attempt_ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=1000)


class ReportErrorIn(serializers.Serializer):
    code = StrictCharField(max_length=64)
    message = StrictCharField(max_length=2000, allow_blank=True)
    retryable = StrictBooleanField(required=False, default=True)


class ReportIn(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    outcome = serializers.ChoiceField(choices=["succeeded", "failed", "partial"])
    error = ReportErrorIn(required=False, allow_null=True)
    log_tail = LogTailField(required=False, allow_blank=True, trim_whitespace=False)


class UpdateReportIn(serializers.Serializer):
    version = StrictCharField(max_length=63)
    stage = serializers.ChoiceField(choices=UpdateStage.values)
    ok = StrictBooleanField()
    details = SafeJSONObjectField(required=False)


class EnqueueIn(serializers.Serializer):
    provider = StrictCharField(max_length=63)
    payloads = serializers.ListField(child=SafeJSONObjectField(), min_length=1, max_length=10_000,
                                     required=False)
    count = StrictIntegerField(min_value=1, max_value=100_000, required=False)
    payload = SafeJSONObjectField(required=False)
    priority = StrictIntegerField(min_value=-32768, max_value=32767, required=False, default=0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "payloads" not in attrs and "count" not in attrs:
            raise serializers.ValidationError("Give `payloads` or `count` (with an optional `payload`).")
        return attrs


# --- the bodies -----------------------------------------------------------------------------------

_texts = st.one_of(
    st.text(max_size=8), st.sampled_from(["", " ", "  x  ", "\t\n", "\x00", "a\x00", "\ud800", " \ud800 ",
                                          "maps", "succeeded", "failed", "partial", "installed", "ok"]),
    st.text(min_size=60, max_size=70), st.builds(lambda n: "x" * n, st.integers(2000, 2002)),
    st.builds(lambda n: "é" * n, st.integers(8190, 8194)),
)
_ints = st.one_of(st.integers(-5, 60), st.sampled_from([-32769, -32768, 32767, 32768, 43200, 43201, 100_000,
                                                        100_001, 2**63, -(2**63) - 1, 2**128]))
_uuids = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex), st.uuids().map(lambda u: u.int),
                   st.uuids().map(lambda u: "{" + str(u) + "}"), st.just("not-a-uuid"))
_scalars = st.one_of(st.none(), st.booleans(), _ints, st.floats(allow_nan=False, allow_infinity=False),
                     _texts, _uuids)
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_texts, inner, max_size=4)), max_leaves=12)
_deep = st.integers(18, 23).map(lambda n: json.loads("[" * n + "1" + "]" * n))
_values = st.one_of(_scalars, _json, _deep, st.lists(_texts, max_size=3), st.lists(_uuids, max_size=3),
                    st.builds(lambda n: ["p"] * n, st.sampled_from([0, 99, 100, 101])))


def _edges(field: Field) -> st.SearchStrategy[Any]:
    """Values at a field's edges (bounds, lengths, choices), beside anything at all."""
    edges: list[Any] = []
    if isinstance(field, Integer):
        for bound in (field.min_value, field.max_value):
            if bound is not None:
                edges += [bound - 1, bound, bound + 1]
    if isinstance(field, Text) and field.max_length is not None:
        edges += ["y" * (field.max_length + delta) for delta in (-1, 0, 1)]
        edges += [" " + "y" * field.max_length + " "]
    if isinstance(field, Choice):
        edges += field.choices + [f" {choice}" for choice in field.choices]
    return st.one_of(st.sampled_from(edges), _values) if edges else _values


def _bodies(names: list[str], nested: dict[str, st.SearchStrategy[Any]] | None = None,
            shape: Shape | None = None) -> st.SearchStrategy[Any]:
    nested = nested or {}
    per_field = {name: nested[name] if name in nested else _edges(shape.fields[name]) if shape else _values
                 for name in names}
    fields = st.fixed_dictionaries({}, optional={**per_field, "unknown": _values})
    return st.one_of(fields, fields, fields, _scalars, st.lists(_scalars, max_size=2))


def _answer(run: Any) -> tuple[int, Any]:
    try:
        value = run()
    except Exception as exc:  # the error the client would get
        response = exception_handler(exc, {})
        assert response is not None, exc
        return response.status_code, json.loads(json.dumps(response.data))
    return 200, json.loads(json.dumps(value, default=str))


def _old(serializer_class: type[serializers.Serializer], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.",
                               fields={"non_field_errors": ["Expected a JSON object."]})
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


CASES: list[tuple[type[serializers.Serializer], Shape, dict[str, st.SearchStrategy[Any]]]] = [
    (HeartbeatIn, fleet_protocol.HEARTBEAT_IN, {}),
    (PullIn, queue_protocol.PULL_IN, {}),
    (ExchangePullIn, queue_protocol.EXCHANGE_PULL_IN, {}),
    (ExtendIn, queue_protocol.EXTEND_IN, {"attempt_id": st.one_of(_uuids, _values)}),
    (ReleaseIn, queue_protocol.RELEASE_IN, {"attempt_ids": st.one_of(st.lists(_uuids, max_size=3), _values)}),
    (ReportIn, queue_protocol.REPORT_IN, {
        "attempt_id": st.one_of(_uuids, _values),
        "error": st.one_of(_bodies(["code", "message", "retryable"], shape=queue_protocol.REPORT_ERROR_IN),
                           st.none()),
    }),
    (UpdateReportIn, releases_protocol.UPDATE_REPORT_IN, {}),
    (EnqueueIn, queue_protocol.ENQUEUE_IN, {"payloads": st.one_of(st.lists(_values, max_size=3), _values)}),
]


@pytest.mark.parametrize(("reference", "shape", "nested"), CASES, ids=[case[1].name for case in CASES])
def test_protocol_shape_answers_exactly_as_the_serializer_it_replaced(reference, shape, nested):
    names = [name for name in shape.fields if name != "leads"]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=_bodies(names, nested, shape))
    def check(body: Any) -> None:
        old = _answer(lambda: _old(reference, body))
        new = _answer(lambda: _leads_dropped(body_parse(shape, body)))
        assert new == old, body

    check()


def _leads_dropped(values: dict[str, Any]) -> dict[str, Any]:
    # A report's leads are handed on to ingestion's parser, as before; the reference never saw them.
    return {name: value for name, value in values.items() if name != "leads"}


def test_a_uuid_is_parsed_to_the_same_uuid():
    attempt = uuid.uuid4()
    assert body_parse(queue_protocol.EXTEND_IN, {"attempt_id": attempt.hex})["attempt_id"] == attempt
