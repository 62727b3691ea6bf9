"""Admin › Failure clusters, the remedy confirm page, and the lineage pages (staff only: admin_view)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from alerts.services import AlertsError
from core.audit import Actor
from ingestion.models import Lead
from leadops.failures.clusters import DEFAULT_DAYS, cluster_find, failure_clusters
from leadops.failures.lineage import dead_job_lineage, lead_lineage
from leadops.failures.remedy import SILENCE_MINUTES, cluster_remedy, remedy_permissions, remedy_plan
from queueing.models import Job, JobState
from releases_app.services import ReleaseRefused

VIEW_ATTEMPTS = "queueing.view_jobattempt"


def _days(request: HttpRequest) -> int:
    try:
        return max(1, min(90, int(request.GET.get("days", DEFAULT_DAYS))))
    except ValueError:
        return DEFAULT_DAYS


def _page(request: HttpRequest, template: str, title: str, **context: object) -> TemplateResponse:
    response = TemplateResponse(request, template, {**admin.site.each_context(request), "title": title,
                                                    **context})
    response["Cache-Control"] = "private, no-store"
    return response


def clusters_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(VIEW_ATTEMPTS):
        raise PermissionDenied
    days = _days(request)
    return _page(request, "admin/leadops/failure_clusters.html", "Failure clusters",
                 clusters=failure_clusters(days=days), days=days)


@require_http_methods(["GET", "POST"])
def cluster_remedy_view(request: HttpRequest, key: str) -> HttpResponse:
    if not request.user.has_perm(VIEW_ATTEMPTS):
        raise PermissionDenied
    cluster = cluster_find(key=key, days=_days(request))
    if cluster is None:
        raise Http404("No such failure cluster (it may have aged out of the window).")
    plan = remedy_plan(cluster)
    allowed = remedy_permissions(request.user)
    if request.method == "POST":
        chosen = {step: request.POST.get(step) == "on" for step in ("rollback", "requeue", "silence")}
        if any(chosen[step] and not allowed[step] for step in chosen):
            raise PermissionDenied
        if not any(chosen.values()):
            messages.warning(request, "Nothing chosen: nothing was done.")
        else:
            try:
                done = cluster_remedy(plan=plan, actor=Actor.from_user(request.user),
                                      rollback=chosen["rollback"], requeue=chosen["requeue"],
                                      silence=chosen["silence"])
            except (ReleaseRefused, AlertsError) as exc:
                # Nothing was done: the steps share one transaction.
                messages.error(request, f"Nothing was done: {exc}")
            else:
                messages.success(request, "Remedy done: " + "; ".join(done.steps or ["nothing to do"]) + ".")
        return HttpResponseRedirect(reverse("leadops-failure-clusters"))
    return _page(request, "admin/leadops/cluster_remedy.html", "Remedy a failure cluster", cluster=cluster,
                 plan=plan, allowed=allowed, silence_minutes=SILENCE_MINUTES)


def lead_lineage_view(request: HttpRequest, lead_id: int) -> HttpResponse:
    if not request.user.has_perm("ingestion.view_lead"):
        raise PermissionDenied
    lead = get_object_or_404(Lead, pk=lead_id)
    pii = request.user.has_perm("ingestion.view_pii")
    return _page(request, "admin/leadops/lineage.html", f"Lineage of lead {lead.pk}",
                 steps=lead_lineage(lead=lead, pii=pii), pii=pii, direction="lead")


def dead_job_lineage_view(request: HttpRequest, job_id: int) -> HttpResponse:
    if not request.user.has_perm(VIEW_ATTEMPTS):
        raise PermissionDenied
    job = get_object_or_404(Job.objects.select_related("campaign__provider", "campaign_run"), pk=job_id)
    return _page(request, "admin/leadops/lineage.html", f"Lineage of dead job {job.pk}",
                 steps=dead_job_lineage(job=job), pii=False, direction="job",
                 dead=job.state == JobState.DEAD)
