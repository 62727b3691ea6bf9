"""Worker endpoints of releases (docs/API.md, "Worker releases"): thin, signed like every worker call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from django.core.files.storage import default_storage
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import NotFound
from releases_app import protocol, selectors, services
from releases_app.models import Channel, Release, ReleaseState
from workers_mgmt.api import WorkerAPIView

_CHUNK = 256 * 1024


def _channel_for(name: str) -> Channel | None:
    """The worker's channel, created on first use; None when staff gave it an impossible name."""
    try:
        return services.channel_get_or_create(name=name, actor="system")
    except services.ReleaseRefused:
        return None


class UpdateCheckView(WorkerAPIView):
    @extend_schema(
        responses={200: protocol.UpdateCheckOut}, operation_id="updates_check",
        parameters=[OpenApiParameter("version", str, description="The version the worker runs (optional; "
                                     "else its last install report or heartbeat).")],
        summary="Which release this worker should run, with its channel's signed manifest.")
    def get(self, request: Request) -> Response:
        worker = self.worker
        # The worker of the signing credential's copy is current: moving a worker to another channel
        # moves its credential generation, which every process checks (docs/DEPLOY.md).
        channel = _channel_for(worker.channel)
        if channel is None:
            return Response({"target": None, "reason": "channel", "manifest": None},
                            headers={"Cache-Control": "no-store"})
        manifest = services.channel_manifest_ensure(channel=channel)
        running = request.query_params.get("version") or selectors.running_version_of(worker=worker)
        decision = selectors.update_decision(worker=worker, channel=channel, running_version=running[:63])
        target = None
        if decision.release is not None:
            entry = services.release_entry(decision.release)
            target = {key: entry[key] for key in ("version", "url", "sha256", "size")}
        return Response({"target": target, "reason": decision.reason, "manifest": manifest},
                        headers={"Cache-Control": "no-store"})


class ManifestView(WorkerAPIView):
    @extend_schema(responses={200: protocol.ManifestOut}, operation_id="releases_manifest",
                   summary="The signed manifest of a channel.")
    def get(self, request: Request, channel: str) -> Response:
        found = Channel.objects.filter(name=channel).first()
        if found is None:
            raise NotFound("No such channel.")
        manifest = services.channel_manifest_ensure(channel=found)
        return Response(manifest, headers={"Cache-Control": "no-store"})


def _stream(handle: IO[bytes], first: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(first)
        left = length
        while left > 0:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()


class DownloadView(WorkerAPIView):
    @extend_schema(responses={(200, "application/octet-stream"): bytes,
                              (206, "application/octet-stream"): bytes},
                   operation_id="releases_download",
                   parameters=[OpenApiParameter("Range", str, OpenApiParameter.HEADER,
                                                description="bytes=first-[last], to resume a download")],
                   summary="The artifact's bytes; a Range request resumes an interrupted download.")
    def get(self, request: Request, version: str) -> StreamingHttpResponse:
        release = Release.objects.filter(version=version, state=ReleaseState.READY).first()
        if release is None:
            raise NotFound("No such ready release.")
        etag = f'"{release.sha256}"'
        span = None
        range_header = request.headers.get("Range", "")
        if_range = request.headers.get("If-Range")
        if range_header and (if_range is None or if_range == etag):
            span = protocol.range_parse(range_header, release.size)
        handle = default_storage.open(release.artifact_name, "rb")
        first, last = span if span else (0, release.size - 1)
        response = StreamingHttpResponse(_stream(handle, first, last - first + 1),
                                         status=206 if span else 200, content_type="application/octet-stream")
        response["Content-Length"] = str(last - first + 1)
        response["Accept-Ranges"] = "bytes"
        response["ETag"] = etag
        response["X-Checksum-SHA256"] = release.sha256
        if span:
            response["Content-Range"] = f"bytes {first}-{last}/{release.size}"
        filename = f"worker-{release.version}.{release.archive_format}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class UpdateReportView(WorkerAPIView):
    @extend_schema(request=protocol.UPDATE_REPORT_IN, responses={200: protocol.EmptyOut},
                   operation_id="updates_report",
                   summary="Report a stage of an update: downloaded, installed, self_test, rolled_back.")
    def post(self, request: Request) -> Response:
        data = protocol.update_report_parse(self.data(request))
        services.update_report_record(worker=self.worker, version=data["version"], stage=data["stage"],
                                      ok=data["ok"], details=data.get("details"))
        return Response({})
