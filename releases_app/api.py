"""Worker endpoints of releases (docs/API.md, "Worker releases"): thin, signed like every worker call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from django.core.files.storage import default_storage
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import NotFound, ProtocolError
from core.fields import SafeJSONObjectField, StrictBooleanField, StrictCharField
from releases_app import selectors, services
from releases_app.models import Channel, Release, ReleaseState, UpdateStage
from workers_mgmt.api import WorkerAPIView

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 256 * 1024


class RangeNotSatisfiable(ProtocolError, status=416, code="range_not_satisfiable"): ...


class TargetOut(serializers.Serializer):
    version = serializers.CharField()
    url = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()


class SignatureOut(serializers.Serializer):
    keyid = serializers.CharField(help_text="First 16 hex digits of SHA-256 of the raw Ed25519 public key.")
    sig = serializers.CharField(help_text="Base64 Ed25519 signature over the canonical JSON of `signed`.")


class ManifestOut(serializers.Serializer):
    signed = serializers.DictField(help_text="schema, channel, sequence, issued_at, expires_at, release, "
                                             "previous, rollout, pinned (docs/RELEASES.md).")
    signatures = SignatureOut(many=True)


class UpdateCheckOut(serializers.Serializer):
    target = TargetOut(allow_null=True)
    reason = serializers.ChoiceField(choices=["pin", "canary", "cohort", "channel", "current"])
    manifest = ManifestOut(allow_null=True)


def _channel_for(name: str) -> Channel | None:
    """The worker's channel, created on first use; None when staff gave it an impossible name."""
    try:
        return services.channel_get_or_create(name=name, actor="system")
    except services.ReleaseRefused:
        return None


class UpdateCheckView(WorkerAPIView):
    @extend_schema(
        responses={200: UpdateCheckOut}, operation_id="updates_check",
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
    @extend_schema(responses={200: ManifestOut}, operation_id="releases_manifest",
                   summary="The signed manifest of a channel.")
    def get(self, request: Request, channel: str) -> Response:
        found = Channel.objects.filter(name=channel).first()
        if found is None:
            raise NotFound("No such channel.")
        manifest = services.channel_manifest_ensure(channel=found)
        return Response(manifest, headers={"Cache-Control": "no-store"})


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range; None to send the whole artifact."""
    match = _RANGE_RE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # several ranges or another unit: the whole body is a valid answer (RFC 9110)
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
        if first >= size or (last_text and int(last_text) < first):
            raise RangeNotSatisfiable(f"The artifact has {size} bytes.",
                                      headers={"Content-Range": f"bytes */{size}"})
        return first, last
    suffix = int(last_text)
    if suffix == 0:
        raise RangeNotSatisfiable(f"The artifact has {size} bytes.",
                                  headers={"Content-Range": f"bytes */{size}"})
    return max(0, size - suffix), size - 1


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
            span = _parse_range(range_header, release.size)
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


class UpdateReportIn(serializers.Serializer):
    version = StrictCharField(max_length=63)
    stage = serializers.ChoiceField(choices=UpdateStage.values)
    ok = StrictBooleanField()
    details = SafeJSONObjectField(required=False)


class EmptyOut(serializers.Serializer):
    pass


class UpdateReportView(WorkerAPIView):
    @extend_schema(request=UpdateReportIn, responses={200: EmptyOut}, operation_id="updates_report",
                   summary="Report a stage of an update: downloaded, installed, self_test, rolled_back.")
    def post(self, request: Request) -> Response:
        data = self.body(request, UpdateReportIn)
        services.update_report_record(worker=self.worker, version=data["version"], stage=data["stage"],
                                      ok=data["ok"], details=data.get("details"))
        return Response({})
