"""Evidence upload: POST /jobs/{id}/evidence (docs/API.md, "Evidence")."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
import uuid

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from queueing.models import AttemptEvidence
from queueing.services import evidence_purge
from tests.factories import make_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=kind)
    return buffer.getvalue()


def claim(signed) -> dict:
    response = signed.pull(1)
    assert response.status_code == 200, response.content
    return response.json()["jobs"][0]


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_png_is_stored_with_its_attempt(signed):
    make_jobs(1)
    job = claim(signed)
    png = image_bytes("PNG")
    response = signed.evidence(job["id"], job["attempt_id"], png)
    assert response.status_code == 200, response.content
    evidence = AttemptEvidence.objects.get(pk=response.json()["evidence_id"])
    assert str(evidence.attempt_id) == job["attempt_id"] and evidence.job_id == job["id"]
    assert (evidence.content_type, evidence.size, evidence.width, evidence.height) == (
        "image/png", len(png), 40, 30)
    assert evidence.sha256 == hashlib.sha256(png).hexdigest()
    assert job["attempt_id"] in evidence.storage_name
    with default_storage.open(evidence.storage_name, "rb") as stored:
        assert stored.read() == png


def test_jpeg_is_accepted(signed):
    make_jobs(1)
    job = claim(signed)
    response = signed.evidence(job["id"], job["attempt_id"], image_bytes("JPEG"), content_type="image/jpeg")
    assert response.status_code == 200, response.content
    assert AttemptEvidence.objects.get().content_type == "image/jpeg"


def test_another_type_is_refused_with_415(signed):
    make_jobs(1)
    job = claim(signed)
    response = signed.evidence(job["id"], job["attempt_id"], image_bytes("GIF"), content_type="image/gif")
    assert_error(response, 415, "unsupported_media_type")
    assert not AttemptEvidence.objects.exists()


@pytest.mark.parametrize("body, content_type", [
    (b"not an image at all", "image/png"),
    (image_bytes("PNG")[:-40], "image/png"),  # truncated: the header parses, the pixels do not
    (image_bytes("JPEG"), "image/png"),       # a JPEG sent as a PNG
    (image_bytes("PNG"), "image/jpeg"),
])
def test_an_image_that_does_not_decode_as_its_type_is_422(signed, tmp_path, body, content_type):
    make_jobs(1)
    job = claim(signed)
    response = signed.evidence(job["id"], job["attempt_id"], body, content_type=content_type)
    assert_error(response, 422, "evidence_undecodable")
    assert not AttemptEvidence.objects.exists()
    assert not (tmp_path / "media" / "evidence").exists() or not any((tmp_path / "media" / "evidence").rglob("*.*"))


def test_an_image_claiming_huge_dimensions_is_422(signed):
    make_jobs(1)
    job = claim(signed)
    # A tiny file that decodes to 50 megapixels of one colour: a decompression bomb.
    response = signed.evidence(job["id"], job["attempt_id"], image_bytes("PNG", size=(10_000, 5_000)))
    assert_error(response, 422, "evidence_undecodable")


def test_over_the_limit_is_413(signed, settings):
    settings.LEADOPS_MAX_EVIDENCE_BYTES = 1024
    make_jobs(1)
    job = claim(signed)
    # Noise does not compress: a 64x64 noisy PNG is well over 1 KiB, and it decodes fine.
    noisy = Image.frombytes("RGB", (64, 64), random.Random(7).randbytes(64 * 64 * 3))
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    big = buffer.getvalue()
    assert len(big) > 1024
    assert_error(signed.evidence(job["id"], job["attempt_id"], big), 413, "payload_too_large")


def test_default_limit_is_512_kib(settings):
    assert settings.LEADOPS_MAX_EVIDENCE_BYTES == 512 * 1024


def test_another_workers_attempt_is_404(signed, make_signed):
    make_jobs(1)
    job = claim(signed)
    other = make_signed("w-other")
    assert_error(other.evidence(job["id"], job["attempt_id"], image_bytes()), 404, "attempt_not_found")


def test_unknown_job_and_attempt_are_404(signed):
    make_jobs(1)
    job = claim(signed)
    assert_error(signed.evidence(job["id"] + 1000, job["attempt_id"], image_bytes()), 404, "job_not_found")
    assert_error(signed.evidence(job["id"], str(uuid.uuid4()), image_bytes()), 404, "attempt_not_found")


def test_a_superseded_attempt_is_409(clock, signed):
    make_jobs(1)
    first = claim(signed)
    response = signed.report(first["id"], {"attempt_id": first["attempt_id"], "outcome": "failed",
                                           "error": {"code": "blocked", "message": "captcha"}})
    assert response.status_code == 200, response.content
    clock.shift(dt.timedelta(hours=2))  # past the backoff: the job is ready again
    second = claim(signed)
    assert second["id"] == first["id"] and second["attempt_id"] != first["attempt_id"]
    assert_error(signed.evidence(first["id"], first["attempt_id"], image_bytes()), 409, "attempt_superseded")
    assert signed.evidence(second["id"], second["attempt_id"], image_bytes()).status_code == 200


def test_evidence_after_the_failure_report_is_kept_while_the_attempt_is_the_latest(signed):
    make_jobs(1)
    job = claim(signed)
    signed.report(job["id"], {"attempt_id": job["attempt_id"], "outcome": "failed",
                              "error": {"code": "blocked", "message": "captcha", "retryable": False}})
    assert signed.evidence(job["id"], job["attempt_id"], image_bytes()).status_code == 200


def test_a_missing_attempt_header_is_400(signed):
    make_jobs(1)
    job = claim(signed)
    response = signed.post(f"/api/v1/jobs/{job['id']}/evidence", raw=image_bytes(), content_type="image/png")
    assert_error(response, 400, "malformed_request")


def test_the_image_is_signed_like_any_body(signed):
    make_jobs(1)
    job = claim(signed)
    png = image_bytes()
    response = signed.post(f"/api/v1/jobs/{job['id']}/evidence", raw=png, content_type="image/png",
                           headers={"X-LeadOps-Attempt-Id": job["attempt_id"]}, tamper_body=png[:-1] + b"\0")
    assert_error(response, 401, "unauthorized")


def test_an_attempt_keeps_at_most_ten_screenshots(signed):
    make_jobs(1)
    job = claim(signed)
    for _ in range(10):
        assert signed.evidence(job["id"], job["attempt_id"], image_bytes()).status_code == 200
    assert_error(signed.evidence(job["id"], job["attempt_id"], image_bytes()), 409, "evidence_limit_reached")


def test_upload_runs_in_few_queries(signed, django_assert_max_num_queries):
    make_jobs(1)
    job = claim(signed)
    # Authentication (credential, nonce, presence) plus job, attempt, count and insert.
    with django_assert_max_num_queries(12):
        assert signed.evidence(job["id"], job["attempt_id"], image_bytes()).status_code == 200


def test_purge_deletes_old_rows_and_their_files(clock, signed):
    make_jobs(2)
    old_job = claim(signed)
    signed.evidence(old_job["id"], old_job["attempt_id"], image_bytes())
    old = AttemptEvidence.objects.get()
    clock.shift(dt.timedelta(days=15))
    new_job = claim(signed)
    signed.evidence(new_job["id"], new_job["attempt_id"], image_bytes())
    assert evidence_purge(older_than=timezone.now() - dt.timedelta(days=14)) == 1
    assert not default_storage.exists(old.storage_name)
    kept = AttemptEvidence.objects.get()
    assert str(kept.attempt_id) == new_job["attempt_id"] and default_storage.exists(kept.storage_name)


def test_the_endpoint_is_in_the_openapi_schema(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/jobs/{job_id}/evidence"]["post"]
    assert set(operation["requestBody"]["content"]) == {"image/png", "image/jpeg"}
    assert "X-LeadOps-Attempt-Id" in {parameter["name"] for parameter in operation["parameters"]}
    assert "413" in operation["responses"] and "200" in operation["responses"]


def test_the_reference_workers_failure_screenshot_is_accepted(signed):
    from worker_client.provider import failure_screenshot

    make_jobs(1)
    job = claim(signed)
    response = signed.evidence(job["id"], job["attempt_id"], failure_screenshot("captcha_required"))
    assert response.status_code == 200, response.content
    assert (AttemptEvidence.objects.get().width, AttemptEvidence.objects.get().height) == (320, 200)
