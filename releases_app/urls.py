from django.urls import path

from releases_app.api import DownloadView, ManifestView, UpdateCheckView, UpdateReportView

urlpatterns = [
    path("updates/check", UpdateCheckView.as_view(), name="updates-check"),
    path("updates/report", UpdateReportView.as_view(), name="updates-report"),
    path("releases/<str:channel>/latest.json", ManifestView.as_view(), name="releases-manifest"),
    path("releases/<str:version>/download", DownloadView.as_view(), name="releases-download"),
]
