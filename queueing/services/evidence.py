"""Evidence of an attempt: the screenshots a worker uploads (docs/API.md, "Evidence").

An image is checked before anything reaches the storage: its declared type, its size, and that it
really decodes as that type (Pillow loads every pixel, so a truncated or forged file is refused).
Files go through Django's storage API beside the release artifacts, under the attempt's id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import uuid
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.timezone import now as clock_now
from PIL import Image, UnidentifiedImageError

from core.errors import PayloadTooLarge
from core.purge import delete_or_count, keyset_batches
from queueing.models import AttemptEvidence, EvidenceType, Job, JobAttempt
from queueing.services.errors import (
    AttemptNotFound,
    AttemptSuperseded,
    EvidenceLimitReached,
    EvidenceTypeUnsupported,
    EvidenceUndecodable,
    JobNotFound,
)
from queueing.services.leases import MAX_JOB_ID
from workers_mgmt.models import Worker

# Pillow's format name for each accepted content type.
_PIL_FORMATS = {EvidenceType.PNG: "PNG", EvidenceType.JPEG: "JPEG"}
_SUFFIXES = {EvidenceType.PNG: "png", EvidenceType.JPEG: "jpg"}
# A screenshot is a few megapixels; a small file that claims far more is a decompression bomb.
MAX_EVIDENCE_PIXELS = 40_000_000
# Screenshots per attempt: enough for "before" and "after" of a few steps, never a flood of files.
MAX_EVIDENCE_PER_ATTEMPT = 10


def _image_checked(*, content_type: str, body: bytes) -> tuple[int, int]:
    """The image's (width, height) when it decodes fully as `content_type`; else EvidenceUndecodable."""
    expected = _PIL_FORMATS[EvidenceType(content_type)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body), formats=[expected]) as image:
                width, height = image.size
                if width * height > MAX_EVIDENCE_PIXELS:
                    raise EvidenceUndecodable(f"The image claims {width}x{height} pixels; "
                                              f"at most {MAX_EVIDENCE_PIXELS} are accepted.")
                # `load` decodes every pixel: a truncated or corrupt file fails here, not later in
                # an operator's browser.
                image.load()
    except EvidenceUndecodable:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        raise EvidenceUndecodable(f"The body does not decode as {content_type}.") from None
    return width, height


def evidence_storage_name(*, attempt_id: uuid.UUID, evidence_id: uuid.UUID, content_type: str) -> str:
    return f"evidence/{attempt_id}/{evidence_id}.{_SUFFIXES[EvidenceType(content_type)]}"


def evidence_upload(
    *, worker: Worker, job_id: int, attempt_id: uuid.UUID, content_type: str, body: bytes,
) -> AttemptEvidence:
    """Keep one screenshot of a worker's latest attempt on a job."""
    if content_type not in EvidenceType.values:
        raise EvidenceTypeUnsupported()
    limit = settings.LEADOPS_MAX_EVIDENCE_BYTES
    if len(body) > limit:
        raise PayloadTooLarge(f"The image is larger than LEADOPS_MAX_EVIDENCE_BYTES ({limit} bytes).")
    if not 0 < job_id <= MAX_JOB_ID:
        raise JobNotFound()
    job = Job.objects.filter(pk=job_id).only("id", "current_attempt_id").first()
    if job is None:
        raise JobNotFound()
    attempt = JobAttempt.objects.filter(pk=attempt_id, job_id=job.pk).only("id", "worker_id").first()
    # Another worker's attempt is answered like a missing one: a worker learns nothing about the
    # attempts of others.
    if attempt is None or attempt.worker_id != worker.pk:
        raise AttemptNotFound()
    if job.current_attempt_id != attempt.pk:
        raise AttemptSuperseded("A newer attempt of this job exists; evidence goes with the latest one.")
    if AttemptEvidence.objects.filter(attempt_id=attempt.pk).count() >= MAX_EVIDENCE_PER_ATTEMPT:
        raise EvidenceLimitReached()
    width, height = _image_checked(content_type=content_type, body=body)
    evidence_id = uuid.uuid4()
    name = evidence_storage_name(attempt_id=attempt.pk, evidence_id=evidence_id, content_type=content_type)
    stored_name = default_storage.save(name, ContentFile(body, name=name))
    try:
        with transaction.atomic():
            return AttemptEvidence.objects.create(
                id=evidence_id, attempt_id=attempt.pk, job_id=job.pk, storage_name=stored_name,
                content_type=content_type, size=len(body), sha256=hashlib.sha256(body).hexdigest(),
                width=width, height=height, created_at=clock_now(),
            )
    except BaseException:
        # No row, no file: a failed insert must not leave an image nobody can find or purge.
        default_storage.delete(stored_name)
        raise


def evidence_purge(*, older_than: dt.datetime, chunk: int = 500, dry_run: bool = False) -> int:
    """Delete evidence uploaded before `older_than`: its rows and its files (docs/PRIVACY.md).

    With `dry_run`, count the same chunks and delete no row and no file.
    """
    expired = AttemptEvidence.objects.filter(created_at__lt=older_than)
    purged = 0
    for ids in keyset_batches(queryset=expired, batch_size=chunk, order="created_at"):
        batch = expired.filter(pk__in=ids)
        if dry_run:
            purged += batch.count()
            continue
        # Files first, rows after: a crash in between leaves rows whose files are gone (the admin
        # shows "file missing", the next run deletes them), never files no row points to, which
        # no purge would ever find again: evidence must not outlive its retention.
        for name in batch.values_list("storage_name", flat=True):
            default_storage.delete(name)
        with transaction.atomic():
            purged += delete_or_count(queryset=batch, dry_run=False)
    return purged


def log_tails_purge(*, older_than: dt.datetime, dry_run: bool = False) -> int:
    """Blank the log tails of attempts claimed before `older_than` (evidence retention, docs/PRIVACY.md)."""
    tails = JobAttempt.objects.filter(claimed_at__lt=older_than).exclude(log_tail="")
    return tails.count() if dry_run else tails.update(log_tail="")
