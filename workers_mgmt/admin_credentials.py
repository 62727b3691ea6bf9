"""The worker page's credential panel and the pages around its buttons (workers_mgmt/admin.py routes).

Every button of the panel that changes a key (rotate, emergency rotate, revoke) first opens a
confirmation page that names what will happen and changes nothing (a GET); its form POSTs with a
CSRF token and does it: Django admin's own pattern, with no inline script for the portal's
Content-Security-Policy to block. Secrets appear only on the page answering the POST that made them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.timezone import now as clock_now
from django.views.decorators.debug import sensitive_variables

from core.admin_tools import confirmation_page
from workers_mgmt.models import CredentialEvent, CredentialState, DeliveryMode, Worker, WorkerCredential
from workers_mgmt.services import IssuedCredential

CREDENTIAL_ISSUED_TEMPLATE = "admin/workers_mgmt/credential_issued.html"
ENROLLMENT_ISSUED_TEMPLATE = "admin/workers_mgmt/enrollment_issued.html"
# How many audit rows the worker page shows; the full trail is in the credential events admin.
AUDIT_TRAIL_ROWS = 50
EMERGENCY = "emergency"
MAX_GRACE_HOURS = 24 * 90


def age_text(delta: dt.timedelta) -> str:
    """A short human age: '12 s ago', '5 min ago', '3 h ago', '2 d ago'."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def settings_grace_hours() -> float:
    from django.conf import settings

    return settings.LEADOPS_ROTATION_GRACE_HOURS


def rotation_choice(data: Any) -> tuple[str, float] | None:
    """The (mode, grace hours) a rotate form asks for, or None when they are not valid."""
    mode = data.get("mode", DeliveryMode.PUSH)
    try:
        grace_hours = float(data.get("grace_hours") or settings_grace_hours())
    except ValueError:
        return None
    if mode not in (*DeliveryMode.values, EMERGENCY) or not 0 <= grace_hours <= MAX_GRACE_HOURS:
        return None
    return mode, grace_hours


def worker_url(worker: Worker) -> str:
    return reverse("admin:workers_mgmt_worker_change", args=[quote(worker.pk)])


def _live_keys(worker: Worker) -> list[WorkerCredential]:
    return list(worker.credentials.exclude(state=CredentialState.REVOKED).order_by("-created_at"))


def rotate_confirmation(model_admin: admin.ModelAdmin, request: HttpRequest, worker: Worker, *,
                        mode: str, grace_hours: float) -> HttpResponse:
    """The page before a rotation: which keys stop working, when, and how the new one is delivered."""
    keys = [(f"{key.key_id} ({key.get_state_display()})", "") for key in _live_keys(worker)]
    hidden = [("mode", mode), ("grace_hours", f"{grace_hours:g}")]
    if mode == EMERGENCY:
        return confirmation_page(
            model_admin, request, title=f"Emergency rotation of {worker.pk}?",
            question=f"Revoke every key of worker {worker.pk} now and make one new key?",
            consequences=["Every key below is revoked at once: requests signed with it are refused (401) "
                          "from now on, in every server process.",
                          "One new key is made; its secret is shown once, on the next page. The worker "
                          "stops working until it is given that secret."],
            objects=keys, hidden=hidden, confirm_label="Yes, revoke every key", cancel_url=worker_url(worker))
    delivery = ("The worker gets the new key in its next heartbeat and switches to it."
                if mode == DeliveryMode.PUSH else
                "The new secret is shown once, on the next page: install it on the worker by hand.")
    return confirmation_page(
        model_admin, request, title=f"Rotate the key of {worker.pk}?",
        question=f"Start a {mode} rotation of worker {worker.pk}?",
        consequences=[f"A pending key is made. {delivery}",
                      f"Once the worker signs with the new key, its current key keeps working for "
                      f"{grace_hours:g} hour(s) of grace, then is revoked."],
        objects=keys, hidden=hidden, confirm_label="Yes, rotate", cancel_url=worker_url(worker), danger=False)


def revoke_confirmation(model_admin: admin.ModelAdmin, request: HttpRequest,
                        credential: WorkerCredential) -> HttpResponse:
    """The page before revoking one key."""
    worker = credential.worker
    others = [key for key in _live_keys(worker) if key.key_id != credential.key_id]
    left = (", ".join(f"{key.key_id} ({key.get_state_display()})" for key in others)
            or "none: the worker is refused until it is given a new key")
    return confirmation_page(
        model_admin, request, title=f"Revoke key {credential.key_id}?",
        question=f"Revoke key {credential.key_id} ({credential.get_state_display()}) "
                 f"of worker {worker.pk} now?",
        consequences=["Requests signed with it are refused (401) at once, in every server process. "
                      "A revoked key cannot be restored.", f"Keys of this worker still valid after: {left}."],
        confirm_label="Yes, revoke", cancel_url=worker_url(worker))


def grace_left_text(credential: WorkerCredential, now: dt.datetime) -> str:
    if credential.state != CredentialState.PREVIOUS or credential.grace_until is None:
        return ""
    left = credential.grace_until - now
    if left.total_seconds() <= 0:
        return "ended"
    return age_text(left).replace(" ago", " left")


def credential_panel_context(worker: Worker, *, can_manage: bool) -> dict[str, Any]:
    """What the worker page shows under its form: keys with their state, and the audit trail."""
    now = clock_now()
    credentials = list(worker.credentials.select_related("rotation").order_by("-created_at"))
    for credential in credentials:
        credential.grace_left = grace_left_text(credential, now)  # type: ignore[attr-defined]
        credential.revoke_url = reverse("admin:workers_mgmt_worker_revoke",  # type: ignore[attr-defined]
                                        args=[quote(worker.pk), credential.key_id])
    return {
        "credentials": credentials,
        "credential_events": CredentialEvent.objects.filter(worker_id=worker.pk)[:AUDIT_TRAIL_ROWS],
        "credential_events_url": reverse("admin:workers_mgmt_credentialevent_changelist")
        + f"?worker_id={worker.pk}",
        "can_manage_credentials": can_manage,
        "rotation_pending": any(c.state == CredentialState.PENDING for c in credentials),
        "rotate_url": reverse("admin:workers_mgmt_worker_rotate", args=[quote(worker.pk)]),
        "enroll_url": reverse("admin:workers_mgmt_worker_enroll", args=[quote(worker.pk)]),
        "default_grace_hours": settings_grace_hours(),
    }


@sensitive_variables("issued")
def credential_issued_response(model_admin: admin.ModelAdmin, request: HttpRequest,
                               issued: list[IssuedCredential], *, title: str) -> HttpResponse:
    """The one page that ever shows these secrets; admin_view already marks it never_cache."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "issued": issued,
        "worker_changelist_url": reverse("admin:workers_mgmt_worker_changelist"),
        "worker_add_url": reverse("admin:workers_mgmt_worker_add"),
    }
    response = TemplateResponse(request, CREDENTIAL_ISSUED_TEMPLATE, context)
    # Belt and braces beside never_cache: no proxy or browser history may keep the page.
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    response["Pragma"] = "no-cache"
    response["Referrer-Policy"] = "no-referrer"
    return response


@sensitive_variables("issued")
def enrollment_issued_response(model_admin: admin.ModelAdmin, request: HttpRequest,
                               issued: Any) -> HttpResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Enrollment token for {issued.worker_id}",
        "opts": model_admin.opts,
        "issued": issued,
        "worker_url": reverse("admin:workers_mgmt_worker_change", args=[quote(issued.worker_id)]),
    }
    response = TemplateResponse(request, ENROLLMENT_ISSUED_TEMPLATE, context)
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    response["Referrer-Policy"] = "no-referrer"
    return response
