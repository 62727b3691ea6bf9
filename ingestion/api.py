"""Staff API of ingestion: the telemetry the dashboards and alert rules read."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ingestion.selectors import ingestion_telemetry


class IngestionTelemetryView(APIView):
    """Return today's counts, the 24-hour dup ratio, the 7-day trend and per provider / worker numbers.

    Staff only: the project's default permission (IsAdminUser, session authentication) applies.
    """

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT}, operation_id="telemetry_ingestion",
        summary="Ingestion telemetry (staff): today, dup_ratio_24h, 7-day trend, per provider and worker.",
    )
    def get(self, request: Request) -> Response:
        return Response(ingestion_telemetry())
