"""Every doc says the same about dead jobs (one retention class, announced) and about the reaper."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alerts.models import RuleKind
from alerts.rules import DEFAULTS
from leadops.models import DataClass
from leadops.retention import default_days

DOCS = Path(__file__).resolve().parents[2] / "docs"
SENTENCE = (
    'Dead jobs (the DLQ) are one retention class, `dead_jobs` (30 days by default): `purge_retention` deletes a '
    "dead job that many days after it died, Admin › Dead jobs (DLQ) shows each job's \"purged on\" date, and the "
    "alert `dlq_purge_due` warns 72 hours before a provider's first dead job is purged."
)


def _text(name: str) -> str:
    return re.sub(r"\s+", " ", (DOCS / name).read_text(encoding="utf-8"))


def test_the_sentence_states_the_code_defaults():
    assert default_days()[DataClass.DEAD_JOBS] == 30
    assert DEFAULTS[RuleKind.DLQ_PURGE_DUE].threshold == 72


@pytest.mark.parametrize("name", ["RUNBOOK.md", "DEPLOY.md", "SYSTEM_OVERVIEW.md", "PRIVACY.md"])
def test_every_doc_says_the_same_about_dead_job_retention(name):
    text = _text(name)
    assert SENTENCE in text
    for stale in ("Dead jobs are never pruned", "dead jobs stay |", "stay until staff act",
                  "dead jobs kept until staff delete them"):
        assert stale not in text, f"{name} still says {stale!r}"


def test_reaper_descriptions_say_what_the_code_does():
    reliability, runbook = _text("RELIABILITY.md"), _text("RUNBOOK.md")
    # The reaper puts a lapsed job back ready at once (run_at = now), from the pull path and the q cluster.
    assert "requeues the job with backoff" not in reliability
    assert "ready at once (no backoff" in reliability and "ready at once (no backoff)" in runbook
    assert "expired leases are never reaped" not in runbook
    assert "plus up to a minute for the reaper" not in runbook
    assert runbook.count("LEADOPS_REAP_ON_PULL_S") >= 3
