from django.urls import path

from ingestion.api import IngestionTelemetryView

urlpatterns = [
    path("telemetry/ingestion", IngestionTelemetryView.as_view(), name="telemetry-ingestion"),
]
