"""The suite's flush guard (tests/conftest.py, `_explained_flush`): one deadlock is retried, any other
failure names its cause."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from tests.conftest import flush_explained


class _Deadlock(Exception):
    sqlstate = "40P01"


class _Missing(Exception):
    sqlstate = "42P01"


def _flush_failing(*causes: Exception):
    calls = []

    def flush():
        calls.append(1)
        if causes[len(calls) - 1:]:
            wrapper = RuntimeError("wrapped by Django")
            wrapper.__cause__ = causes[len(calls) - 1]
            raise CommandError("Database couldn't be flushed.") from wrapper
        return "flushed"

    return flush, calls


def test_a_deadlock_victim_is_flushed_again_once():
    flush, calls = _flush_failing(_Deadlock())
    assert flush_explained(flush) == "flushed"
    assert len(calls) == 2


def test_a_second_deadlock_fails():
    flush, calls = _flush_failing(_Deadlock(), _Deadlock())
    with pytest.raises(CommandError):
        flush_explained(flush)
    assert len(calls) == 2


def test_any_other_failure_says_its_cause(db):
    flush, calls = _flush_failing(_Missing("relation does not exist"))
    with pytest.raises(CommandError, match=r"(?s)cause: RuntimeError.*other sessions"):
        flush_explained(flush)
    assert len(calls) == 1
