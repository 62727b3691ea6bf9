"""Helpers of the ingestion tests: leads in the protocol shape, and ingesting them like a report does."""

from __future__ import annotations

from typing import Any

import pytest

from ingestion.schema import parse_lead_rows
from ingestion.services import IngestResult, lead_batch_ingest


def lead(name: str = "Cafe", phone: str = "0501234567", **extra: Any) -> dict[str, Any]:
    return {"name": name, "phone": phone, **extra}


def ingest(raw: list[dict[str, Any]], *, provider: str = "maps", worker_id: str = "w-1",
           **kwargs: Any) -> IngestResult:
    rows = parse_lead_rows(raw, max_leads=max(1000, len(raw)))
    return lead_batch_ingest(rows=rows, provider=provider, worker_id=worker_id, **kwargs)


def saudi_mobiles(count: int, *, start: int = 0) -> list[str]:
    """Distinct, valid Saudi mobile numbers in the national format."""
    return [f"055{start + i:07d}" for i in range(count)]


@pytest.fixture
def fixed_key(settings):
    settings.LEADOPS_FINGERPRINT_KEY = "test-fingerprint-key"
    return settings.LEADOPS_FINGERPRINT_KEY


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # admin_client and create_user hash a password per test; the default hasher takes about a second.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
