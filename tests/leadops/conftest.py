"""Fixtures of the leadops tests: a fresh in-memory channel layer, users; `purge_retention --json`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command


def purge_retention(*args: str) -> dict:
    """`purge_retention --json ARGS`: its answer."""
    out = io.StringIO()
    call_command("purge_retention", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def fresh_layer():
    # The in-memory layer's queues belong to the event loop that first used them; every test runs
    # its own loop, so each starts with a new layer.
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("ops", password="pw-ops-123", is_staff=True)


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user("someone", password="pw-someone-123", is_staff=False)
