"""Worker endpoints of the fleet: heartbeat and config. Thin: parse, call a service, answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils.timezone import now as clock_now
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from workers_mgmt import protocol
from workers_mgmt.auth import IsWorker, WorkerSignatureAuthentication
from workers_mgmt.models import Worker, WorkerCredential
from workers_mgmt.services import (
    EnrollmentRefused,
    credential_deliver,
    enrollment_exchange,
    pending_push_waiting_sql,
    worker_config_get,
    worker_config_recent,
    worker_heartbeat,
    worker_seen_reading,
)

logger = logging.getLogger("leadops.auth")


class WorkerAPIView(APIView):
    """Base of every signed worker endpoint."""

    authentication_classes = [WorkerSignatureAuthentication]
    permission_classes = [IsWorker]
    # Any signed request refreshes the worker's liveness (docs/API.md, "Liveness"); the heartbeat
    # writes it with the rest of what it reports.
    refreshes_liveness = True
    # This request refreshed liveness: its answer carries what a heartbeat's would (`standin_fields`).
    stands_in = False
    # The update target, when the liveness UPDATE read it (one statement for both, as the heartbeat).
    _update_target: tuple[dict[str, Any] | None] | None = None
    # Whether a push key waits for the worker, as the same UPDATE read it (None: not read).
    _push_waiting: bool | None = None

    @property
    def worker(self) -> Worker:
        return self.request.user  # type: ignore[return-value]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if self.refreshes_liveness:
            # The answer that stands in for a heartbeat needs the update target and whether a push
            # key waits: both are read by the liveness UPDATE, which this request makes anyway.
            read = update_target_read()
            worker_id = self.worker.pk
            waiting = pending_push_waiting_sql()
            statement = ((waiting, [worker_id]) if read is None else
                         (f"{read.subquery(connection.vendor)}, {waiting}",
                          [read.now(), worker_id, worker_id]))
            self.stands_in, values = worker_seen_reading(worker=self.worker, read=statement)
            if self.stands_in and values is not None:
                self._push_waiting = bool(values[-1])
                if read is not None:
                    self._update_target = (read.decode(values[0]),)

    def standin_fields(self, request: Request) -> dict[str, Any]:
        """What a heartbeat answers, for an answer that stands in for one; else nothing."""
        if not self.stands_in:
            return {}
        target = update_target_for(self.worker.pk) if self._update_target is None else self._update_target[0]
        return answer_fields(credential=request.auth, ip=client_ip(request),  # type: ignore[arg-type]
                             update_target=target, push_waiting=self._push_waiting)

    def data(self, request: Request) -> Any:
        """The decoded JSON body (an empty body is `{}`), for the app's protocol module to parse."""
        return request.data if request.body else {}


def client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def heartbeat_fields(request: Request, *, worker: Worker) -> dict[str, Any]:
    """`config_version`, `update_target` and a pending push key: what the heartbeat answers, and
    what a pull or an exchange that refreshed liveness answers too (docs/API.md, "Liveness").

    An answer that carries `credentials` must be sent with `Cache-Control: no-store`.
    """
    return answer_fields(credential=request.auth, ip=client_ip(request),  # type: ignore[arg-type]
                         update_target=update_target_for(worker.pk))


def answer_fields(*, credential: WorkerCredential, ip: str | None, update_target: dict[str, Any] | None,
                  push_waiting: bool | None = None) -> dict[str, Any]:
    """`heartbeat_fields`, once the update target is known (the heartbeat reads it in its UPDATE),
    and whether a push key waits when that was read too (`pending_push_waiting_sql`)."""
    # A copy at most WORKER_CONFIG_MAX_AGE_S old: a changed version reaches the fleet that much later.
    fields: dict[str, Any] = {"config_version": worker_config_recent().version,
                              "update_target": update_target}
    # Push rotation: the only answers in which a secret ever leaves the server.
    pending = credential_deliver(credential=credential, ip=ip, waiting=push_waiting)
    if pending is not None:
        fields["credentials"] = {"pending": {"key_id": pending.key_id, "secret": pending.secret}}
    return fields


def no_store_if_secret(answer: dict[str, Any]) -> dict[str, str] | None:
    """The headers of an answer: `Cache-Control: no-store` when it carries a key."""
    return {"Cache-Control": "no-store"} if "credentials" in answer else None


class HeartbeatView(WorkerAPIView):
    refreshes_liveness = False

    @extend_schema(request=protocol.HEARTBEAT_IN, responses={200: protocol.HeartbeatOut},
                   operation_id="heartbeat",
                   summary="Report liveness; learn the poll interval, config version and update target.")
    def post(self, request: Request) -> Response:
        data = protocol.heartbeat_parse(self.data(request))
        worker_heartbeat(
            worker=self.worker, version=data["version"], status=data["status"],
            running_jobs=data["running_jobs"], metrics=data.get("metrics"), ip=client_ip(request),
            self_test=data.get("self_test"),
        )
        answer = {"server_time": clock_now().isoformat(),
                  "poll_interval_s": worker_config_recent().poll_interval_s,
                  **heartbeat_fields(request, worker=self.worker)}
        return Response(answer, headers=no_store_if_secret(answer))


class ConfigView(WorkerAPIView):
    @extend_schema(responses={200: protocol.ConfigOut}, operation_id="config",
                   summary="The worker's configuration.")
    def get(self, request: Request) -> Response:
        from django.conf import settings

        config = worker_config_get()
        return Response({
            "config_version": config.version,
            "poll_interval_s": config.poll_interval_s,
            "long_poll_wait_s": config.long_poll_wait_s,
            "heartbeat_interval_s": config.heartbeat_interval_s,
            "update_check_interval_s": config.update_check_interval_s,
            "max_batch": min(config.max_batch, settings.LEADOPS_MAX_PULL),
            "report_chunk_leads": min(config.report_chunk_leads, config.max_leads_per_report,
                                      settings.LEADOPS_MAX_LEADS_PER_REPORT),
            # Tuned in admin, never above the server's hard limits.
            "max_body_bytes": min(config.max_body_bytes, settings.LEADOPS_MAX_BODY_BYTES),
            "max_leads_per_report": min(config.max_leads_per_report, settings.LEADOPS_MAX_LEADS_PER_REPORT),
            "enabled_providers": enabled_provider_names(),
            "channel": self.worker.channel,
            "rate_limit_per_min": self.worker.rate_limit_per_min,
            "extra": config.extra,
        })


def enabled_provider_names() -> list[str]:
    """The providers a worker may be asked to scrape.

    The fleet app does not own providers; the queue registers this lookup at start-up so the
    dependency arrow stays queueing -> workers_mgmt (docs/SYSTEM_OVERVIEW.md, "Layers").
    """
    return list(_provider_lookup()) if _provider_lookup else []


_provider_lookup = None


def register_provider_lookup(lookup) -> None:
    global _provider_lookup
    _provider_lookup = lookup


def update_target_for(worker_id: str) -> dict[str, Any] | None:
    """What the heartbeat answers as `update_target`: `{version, sequence}` or None.

    Releases own channels, rollouts and pins; they register this lookup at start-up so the
    dependency arrow stays releases_app -> workers_mgmt (docs/SYSTEM_OVERVIEW.md, "Layers"). The
    lookup reads the database on every call (one statement), so it is never staler than the
    heartbeat itself.
    """
    return _update_target_lookup(worker_id) if _update_target_lookup else None


_update_target_lookup: Callable[[str], dict[str, Any] | None] | None = None


@dataclass(frozen=True)
class UpdateTargetRead:
    """The update target as part of another statement: `subquery(vendor)` is one SQL expression
    whose parameters are `now()` and the worker id; `decode` turns its value into the answer."""

    subquery: Callable[[str], str]
    now: Callable[[], Any]
    decode: Callable[[Any], dict[str, Any] | None]


_update_target_read: UpdateTargetRead | None = None


def register_update_target_lookup(lookup: Callable[[str], dict[str, Any] | None], *,
                                  read: UpdateTargetRead | None = None) -> None:
    global _update_target_lookup, _update_target_read
    _update_target_lookup = lookup
    _update_target_read = read


def update_target_read() -> UpdateTargetRead | None:
    """How to read the update target inside the heartbeat's UPDATE, when the releases app said."""
    return _update_target_read


class EnrollView(APIView):
    """POST /enroll: unsigned; a one-time enrollment token buys the worker its first key."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(request=protocol.ENROLL_IN, responses={200: protocol.EnrollOut}, operation_id="enroll",
                   auth=[],
                   summary="Exchange a one-time enrollment token for the worker's id, key id and secret.")
    def post(self, request: Request) -> Response:
        from core.errors import RateLimited, Unauthorized
        from workers_mgmt.auth import auth_failure_count, auth_failures_blocked, enroll_failure_key

        ip = client_ip(request)
        # Its own per-IP budget: a token guesser is slowed, and a fleet's enrollments from one NAT
        # never spend the budget its signed requests rely on (or the other way round).
        keys = [enroll_failure_key(ip=ip)]
        blocked = auth_failures_blocked(keys)
        if not blocked.allowed:
            raise RateLimited(blocked.retry_after_s)
        token = protocol.enrollment_token(request.data if request.body else {})
        if token is None:
            auth_failure_count(keys)
            raise Unauthorized()
        try:
            issued = enrollment_exchange(token=token, ip=ip)
        except EnrollmentRefused:
            auth_failure_count(keys)
            logger.warning("enrollment refused: ip=%s", ip)
            raise Unauthorized() from None
        logger.info("worker %s enrolled with key %s", issued.worker_id, issued.key_id)
        return Response(issued.as_dict(), headers={"Cache-Control": "no-store"})
