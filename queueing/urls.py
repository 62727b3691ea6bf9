from django.urls import path

from queueing.api import (
    EnqueueView,
    EvidenceView,
    ExchangeView,
    ExtendView,
    PullView,
    ReleaseView,
    ReportView,
)

urlpatterns = [
    path("jobs", EnqueueView.as_view(), name="jobs-enqueue"),
    path("jobs/pull", PullView.as_view(), name="jobs-pull"),
    path("jobs/exchange", ExchangeView.as_view(), name="jobs-exchange"),
    path("jobs/release", ReleaseView.as_view(), name="jobs-release"),
    path("jobs/<int:job_id>/extend", ExtendView.as_view(), name="jobs-extend"),
    path("jobs/<int:job_id>/report", ReportView.as_view(), name="jobs-report"),
    path("jobs/<int:job_id>/evidence", EvidenceView.as_view(), name="jobs-evidence"),
]
