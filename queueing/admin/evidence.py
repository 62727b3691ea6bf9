"""Screenshots of attempts in admin: thumbnails, the staff-only file view, the DLQ filter.

Evidence files are never served from a media URL: the only way to see one is the view below, which
runs inside the admin site (staff login) and asks for the "view attempt" permission each time
(docs/PRIVACY.md, "Evidence screenshots").
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime
from PIL import Image

from queueing.models import AttemptEvidence, Job
from queueing.selectors import evidence_get

THUMBNAIL_PX = 240


def evidence_gallery(items: Iterable[AttemptEvidence], *, label_attempt: bool = False) -> SafeString:
    """Thumbnails that open the full-size image in a new tab."""
    items = list(items)
    if not items:
        return format_html('<span style="color:var(--body-quiet-color)">{}</span>', "no screenshots")
    return format_html(
        '<div class="evidence-gallery" style="display:flex;flex-wrap:wrap;gap:12px">{}</div>',
        format_html_join("", (
            '<figure style="margin:0"><a href="{}" target="_blank" rel="noopener" class="evidence-full">'
            '<img src="{}" alt="screenshot {}" loading="lazy" class="evidence-thumb" '
            'style="max-width:{}px;max-height:{}px;border:1px solid var(--hairline-color)"></a>'
            '<figcaption style="font-size:11px">{}{} · {}×{} · {} KiB · {}</figcaption></figure>'
        ), (
            (_url(item), _url(item, thumbnail=True), item.pk, THUMBNAIL_PX, THUMBNAIL_PX,
             f"attempt {item.attempt.number} · " if label_attempt and item.attempt else "",
             item.get_content_type_display(), item.width, item.height, max(1, round(item.size / 1024)),
             localtime(item.created_at).strftime("%Y-%m-%d %H:%M:%S"))
            for item in items
        )),
    )


def _url(item: AttemptEvidence, *, thumbnail: bool = False) -> str:
    url = reverse("admin:queueing_attemptevidence_file", args=[item.pk])
    return f"{url}?thumbnail=1" if thumbnail else url


def evidence_file_view(request: HttpRequest, evidence_id: uuid.UUID, *, allowed: bool) -> HttpResponse:
    """The image (or a thumbnail of it) for staff who may view attempts."""
    if not allowed:
        raise PermissionDenied
    item = evidence_get(evidence_id=evidence_id)
    if item is None:
        raise Http404("No such screenshot.")
    try:
        with default_storage.open(item.storage_name, "rb") as stored:
            data = stored.read()
    except FileNotFoundError:
        raise Http404("The screenshot's file is gone (purged).") from None
    content_type = item.content_type
    if request.GET.get("thumbnail"):
        data, content_type = _thumbnail(data), "image/png"
    response = HttpResponse(data, content_type=content_type)
    # Personal data in the widest sense: no shared cache keeps it, no browser sniffs it into HTML.
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


def _thumbnail(data: bytes) -> bytes:
    # The upload was decoded in full when it arrived (queueing/services/evidence.py), so this
    # only ever reads an image that is known to be sane.
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


class HasEvidenceFilter(admin.SimpleListFilter):
    title = "has evidence"
    parameter_name = "has_evidence"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        has = Exists(AttemptEvidence.objects.filter(job_id=OuterRef("pk")))
        if self.value() == "yes":
            return queryset.filter(has)
        if self.value() == "no":
            return queryset.filter(~has)
        return queryset
