"""Screenshots in admin: attempt and dead-job pages, the staff-only file view, the DLQ filter."""

from __future__ import annotations

import io
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from PIL import Image

from queueing.models import AttemptEvidence, JobState
from queueing.services import evidence_upload, job_report, jobs_pull
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = pytest.mark.django_db

DLQ = "/admin/queueing/deadjob/"


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def png(size: tuple[int, int] = (800, 600)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def dead_job_with_evidence(*, screenshots: int = 1):
    """A job that died on its only attempt after its worker uploaded `screenshots` screenshots."""
    worker, _ = make_worker(worker_id=f"w-{uuid.uuid4().hex[:6]}")
    provider = make_provider("maps", max_attempts=1)
    job = make_jobs(1, provider=provider)[0]
    claim = jobs_pull(worker=worker, max_jobs=1).claims[0]
    assert claim.job_id == job.pk
    items = [evidence_upload(worker=worker, job_id=job.pk, attempt_id=claim.attempt_id,
                             content_type="image/png", body=png()) for _ in range(screenshots)]
    job_report(worker=worker, job_id=job.pk, attempt_id=claim.attempt_id, outcome="failed", leads=[],
               error={"code": "captcha", "message": "blocked", "retryable": False},
               idempotency_key=str(uuid.uuid4()), request_hash=uuid.uuid4().hex)
    job.refresh_from_db()
    assert job.state == JobState.DEAD
    return job, claim.attempt_id, items


def file_url(item: AttemptEvidence) -> str:
    return reverse("admin:queueing_attemptevidence_file", args=[item.pk])


def test_attempt_page_shows_thumbnails_that_open_full_size(admin_client):
    _, attempt_id, items = dead_job_with_evidence(screenshots=2)
    page = admin_client.get(reverse("admin:queueing_jobattempt_change", args=[attempt_id])).content.decode()
    for item in items:
        assert f'href="{file_url(item)}"' in page
        assert f'src="{file_url(item)}?thumbnail=1"' in page


def test_dead_job_page_shows_the_screenshots_of_its_attempts(admin_client):
    job, _, items = dead_job_with_evidence()
    page = admin_client.get(reverse("admin:queueing_deadjob_change", args=[job.pk])).content.decode()
    assert f'href="{file_url(items[0])}"' in page and "attempt 1 ·" in page


def test_file_view_serves_the_image_privately(admin_client):
    _, _, items = dead_job_with_evidence()
    response = admin_client.get(file_url(items[0]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png" and response.content == png()
    assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
    assert response["X-Content-Type-Options"] == "nosniff"


def test_thumbnail_is_a_small_png(admin_client):
    _, _, items = dead_job_with_evidence()
    response = admin_client.get(file_url(items[0]), {"thumbnail": "1"})
    with Image.open(io.BytesIO(response.content)) as thumbnail:
        assert thumbnail.format == "PNG" and max(thumbnail.size) == 240


def test_file_view_refuses_staff_without_the_view_attempt_permission(client):
    _, _, items = dead_job_with_evidence()
    staff = get_user_model().objects.create_user("no-attempts", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(staff)
    assert client.get(file_url(items[0])).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_jobattempt"))
    staff = get_user_model().objects.get(pk=staff.pk)  # drop the cached permissions
    client.force_login(staff)
    assert client.get(file_url(items[0])).status_code == 200


def test_file_view_sends_anonymous_visitors_to_the_login(client):
    _, _, items = dead_job_with_evidence()
    response = client.get(file_url(items[0]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_no_public_media_url_serves_evidence(client, admin_client):
    _, _, items = dead_job_with_evidence()
    assert client.get(f"/media/{items[0].storage_name}").status_code == 404
    assert admin_client.get(f"/media/{items[0].storage_name}").status_code == 404


def test_unknown_or_purged_screenshot_is_404(admin_client, settings, tmp_path):
    _, _, items = dead_job_with_evidence()
    assert admin_client.get(reverse("admin:queueing_attemptevidence_file", args=[uuid.uuid4()])).status_code == 404
    (tmp_path / "media" / items[0].storage_name).unlink()
    assert admin_client.get(file_url(items[0])).status_code == 404


def test_dlq_filters_dead_jobs_by_evidence(admin_client):
    with_evidence, _, _ = dead_job_with_evidence()
    without, _, _ = dead_job_with_evidence(screenshots=0)
    listed = admin_client.get(DLQ, {"has_evidence": "yes"}).context["cl"].result_list
    assert [job.pk for job in listed] == [with_evidence.pk]
    listed = admin_client.get(DLQ, {"has_evidence": "no"}).context["cl"].result_list
    assert [job.pk for job in listed] == [without.pk]
