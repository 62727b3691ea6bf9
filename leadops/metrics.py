"""GET /metrics: Prometheus text format for staff sessions or the `LEADOPS_METRICS_TOKEN` bearer.

Numbers that must agree across server processes (queue depth, claims, reports, leads, workers
online) are read from the database at scrape time by a custom collector. Request latency is a
per-process histogram (scrape each daphne process, or sum them in PromQL).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.timezone import now as clock_now
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core.errors import error_response
from leadops.middleware import HybridMiddleware

REQUEST_LATENCY = Histogram(
    "leadops_http_request_duration_seconds", "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class DatabaseCollector(Collector):
    """Reads the shared numbers through selectors on every scrape."""

    def collect(self) -> Iterator:
        from leadops import __version__
        from leadops.readiness import readiness_check
        from leadops.selectors import LEAD_OUTCOMES, metrics_snapshot

        snap = metrics_snapshot(now=clock_now(), overdue_s=settings.LEADOPS_HEARTBEAT_OVERDUE_S)
        depth = GaugeMetricFamily("leadops_queue_jobs", "Jobs by state and provider.",
                                  labels=["provider", "state"])
        for provider, state, count in snap["depth"]:
            depth.add_metric([provider, state], count)
        yield depth
        yield CounterMetricFamily("leadops_claims", "Job attempts created by claims.", value=snap["claims"])
        yield CounterMetricFamily("leadops_reports", "Reports (chunks) accepted.", value=snap["reports"])
        leads = CounterMetricFamily("leadops_leads", "Reported leads by outcome.", labels=["outcome"])
        for outcome in LEAD_OUTCOMES:
            leads.add_metric([outcome], snap["leads"][outcome])
        yield leads
        yield GaugeMetricFamily("leadops_dup_ratio", "duplicates / (added + duplicates), all time.",
                                value=snap["dup_ratio"])
        yield GaugeMetricFamily("leadops_workers_online", "Enabled workers with a heartbeat in time.",
                                value=snap["workers_online"])
        # Only breakers that ever left closed have a row; a missing one is closed (0).
        breakers = GaugeMetricFamily("leadops_breaker_state",
                                     "Circuit breaker state (0 closed, 1 half-open, 2 open).",
                                     labels=["scope", "key"])
        for scope, key, state in snap["breakers"]:
            breakers.add_metric([scope, key], BREAKER_STATE_VALUES.get(state, 0))
        yield breakers
        firing = GaugeMetricFamily("leadops_alerts_firing", "Alerts firing, by rule.", labels=["rule"])
        for rule, count in snap["alerts_firing"].items():
            firing.add_metric([rule], count)
        yield firing
        build = GaugeMetricFamily("leadops_build_info", "The LeadOps release this process runs (always 1).",
                                  labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        readiness = readiness_check()
        gates = GaugeMetricFamily("leadops_readiness_gate",
                                  "1 when the Go/No-Go gate holds now, else 0.",
                                  labels=["gate"])
        for gate in readiness.gates:
            gates.add_metric([gate.name], 1 if gate.ok else 0)
        yield gates
        yield GaugeMetricFamily("leadops_readiness_go", "1 when every readiness gate holds.",
                                value=1 if readiness.go else 0)


_registry = CollectorRegistry(auto_describe=False)
_registry.register(DatabaseCollector())
_registry.register(REQUEST_LATENCY)


def _bearer_ok(request: HttpRequest) -> bool | None:
    """True/False when a bearer token was sent (right/wrong), None when none was."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    expected = settings.LEADOPS_METRICS_TOKEN
    given = header[len("Bearer "):].strip()
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    bearer = _bearer_ok(request)
    if bearer is False:
        return error_response("unauthorized", "Wrong metrics token.", 401)
    if bearer is None:
        user = request.user
        if not user.is_authenticated:
            return error_response("unauthorized", "Send the metrics bearer token or log in as staff.", 401,
                                  headers={"WWW-Authenticate": "Bearer"})
        if not (user.is_active and user.is_staff):
            return error_response("forbidden", "Metrics are for staff only.", 403)
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)


class RequestLatencyMiddleware(HybridMiddleware):
    """Observes every request's duration under its URL route (never the raw path: no ids, no PII).

    Sync and async capable, like every middleware here, so the async SSE view is never run in a thread.
    """

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _observe(request, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)  # type: ignore[misc]
        _observe(request, started)
        return response


def _observe(request: HttpRequest, started: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = match.route if match is not None and match.route else "unmatched"
    method = request.method if request.method in _METHODS else "other"
    REQUEST_LATENCY.labels(route=route, method=method).observe(time.perf_counter() - started)
