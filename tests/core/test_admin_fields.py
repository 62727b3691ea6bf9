"""Machine values read as labelled fields (core/admin_fields.py): audit rows, job payloads, attempt
errors; never a Python repr, the raw JSON folded below for copying."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from core.admin_fields import changes_text, field_label, labelled_fields
from core.audit import Actor
from core.models import StaffAction
from queueing import services
from tests.factories import make_jobs, make_provider, make_worker


def test_a_dict_becomes_a_definition_list_with_the_raw_json_folded():
    html = str(labelled_fields({"code": "blocked", "retry_after_s": 30, "retryable": False,
                                "detail": {"http_status": 429}, "tags": ["a", "b"]}))
    assert "<dt>Code</dt><dd>blocked</dd>" in html
    assert "<dt>Retry after (s)</dt><dd>30</dd>" in html and "<dt>Retryable</dt><dd>no</dd>" in html
    assert '<dt>Detail</dt><dd><dl class="lo-fields"><dt>Http status</dt><dd>429</dd></dl></dd>' in html
    assert "<dt>Tags</dt><dd>a, b</dd>" in html
    assert '<details class="lo-raw"><summary>Raw JSON</summary><pre>{' in html and "&quot;code&quot;" in html
    assert "{'" not in html and "False" not in html


def test_values_are_escaped_and_empty_ones_are_a_dash():
    assert "&lt;script&gt;" in str(labelled_fields({"q": "<script>"}))
    assert str(labelled_fields({})) == "-" and str(labelled_fields(None)) == "-"


def test_audit_changes_read_old_to_new():
    assert changes_text({"max_attempts": [5, 9], "enabled": [True, False]}) == (
        "Max attempts: 5 → 9; Enabled: yes → no")
    assert field_label("lease_seconds") == "Lease seconds"


@pytest.mark.django_db
def test_job_attempt_and_audit_pages_show_fields_not_reprs(admin_client, admin_user):
    worker = make_worker(worker_id="w-fields")[0]
    job = make_jobs(1, provider=make_provider("maps", max_attempts=1),
                    payload={"query": "coffee", "city": "Riyadh"})[0]
    claim = services.jobs_pull(worker=worker, max_jobs=1).claims[0]
    body = {"outcome": "failed", "error": {"code": "captcha", "message": "blocked by a captcha",
                                           "retryable": False}}
    services.job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome="failed",
                        leads=[], error=body["error"], idempotency_key=str(uuid.uuid4()),
                        request_hash=services.report_request_hash(job_id=claim.job_id, body=body))
    services.jobs_requeue(job_ids=[job.pk], reset_attempts=False, actor=Actor.from_user(admin_user))

    pages = {
        "job": reverse("admin:queueing_job_change", args=[job.pk]),
        "dead job": reverse("admin:queueing_deadjob_changelist"),
        "attempt": reverse("admin:queueing_jobattempt_change", args=[claim.attempt_id]),
        "audit": reverse("admin:core_staffaction_change", args=[StaffAction.objects.latest("id").pk]),
    }
    for name, url in pages.items():
        html = admin_client.get(url).content.decode()
        assert "{'" not in html and "': " not in html, name
    job_page = admin_client.get(pages["job"]).content.decode()
    assert "<dt>Query</dt><dd>coffee</dd>" in job_page and "<dt>City</dt><dd>Riyadh</dd>" in job_page
    assert "<dt>Message</dt><dd>blocked by a captcha</dd>" in job_page  # the attempt's error, in the inline
    attempt_page = admin_client.get(pages["attempt"]).content.decode()
    assert "<dt>Code</dt><dd>captcha</dd>" in attempt_page and "Raw JSON" in attempt_page
    audit_page = admin_client.get(pages["audit"]).content.decode()
    assert 'class="lo-fields"' in audit_page
