"""Request signing for workers (docs/API.md), as a DRF authentication class.

The caller always gets the same generic 401; the real reason goes to the log. The order of checks
matters: cheap checks first, the signature before anything that reveals state (a disabled worker),
so that only a holder of a valid key learns more than "unauthorized". The nonce is taken before the
key is looked at, because the same round trip tells whether this process's copy of the key is still
current (workers_mgmt/credential_cache.py): a key revoked in any process is refused at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.utils.encoding import escape_uri_path
from django.utils.timezone import now as clock_now
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.db import FixedRead, rows_together
from core.errors import PayloadTooLarge, RateLimited, Unauthorized, WorkerDisabled
from core.ratelimit import Decision, gcra_acquire, gcra_peek, gcra_peek_each
from workers_mgmt.credential_cache import credential_cached, credential_remember, credential_touched
from workers_mgmt.crypto import decrypt_secret
from workers_mgmt.models import CredentialState, Worker, WorkerCredential
from workers_mgmt.nonces import budgets_read_with_nonce, nonce_forget, nonce_record
from workers_mgmt.services import auth_failure_record, credential_promote, credential_touch

logger = logging.getLogger("leadops.auth")

SCHEME = "LEADOPS-HMAC-SHA256"
HEADER_WORKER = "HTTP_X_LEADOPS_WORKER"
HEADER_KEY_ID = "HTTP_X_LEADOPS_KEY_ID"
HEADER_TIMESTAMP = "HTTP_X_LEADOPS_TIMESTAMP"
HEADER_NONCE = "HTTP_X_LEADOPS_NONCE"
HEADER_CONTENT_SHA256 = "HTTP_X_LEADOPS_CONTENT_SHA256"
_SIGNATURE_RE = re.compile(r"^LEADOPS-HMAC-SHA256 Signature=([0-9a-f]{64})$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{22,128}={0,2}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


def string_to_sign(*, method: str, path: str, query: str, worker_id: str, key_id: str,
                   timestamp: str, nonce: str, content_sha256: str) -> str:
    """The canonical string of docs/API.md: nine lines, no trailing newline."""
    return "\n".join(
        [SCHEME, method.upper(), path, query, worker_id, key_id, timestamp, nonce, content_sha256]
    )


def compute_signature(secret: str, canonical: str) -> str:
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def raw_path(request: Request | HttpRequest) -> str:
    """The path exactly as the client sent it (before percent-decoding) when the server knows it.

    ASGI servers pass it as `raw_path`; WSGI servers as `RAW_URI` (gunicorn) or `REQUEST_URI`
    (uWSGI). Without either, the decoded path is escaped again, which matches what clients send
    for every path made of unreserved characters.
    """
    django_request = getattr(request, "_request", request)
    scope = getattr(django_request, "scope", None)
    if scope and scope.get("raw_path"):
        raw = scope["raw_path"].decode("latin-1")
        return raw.split("?", 1)[0]
    sent = django_request.META.get("RAW_URI") or django_request.META.get("REQUEST_URI")
    if isinstance(sent, str) and sent.startswith("/"):
        return sent.split("?", 1)[0]
    return escape_uri_path(django_request.path)


class WorkerSignatureAuthentication(BaseAuthentication):
    def authenticate_header(self, request: Request) -> str:
        return SCHEME

    def authenticate(self, request: Request) -> tuple[Worker, WorkerCredential]:
        return signed_request_authenticate(request._request)


def signed_request_authenticate(request: HttpRequest) -> tuple[Worker, WorkerCredential]:
    """The worker and key that signed this request, or the protocol error to answer.

    A plain function of Django's request, so that a view without DRF's per-request machinery (the
    heartbeat, workers_mgmt/heartbeat.py) checks signatures exactly as the DRF views do.
    """
    meta = request.META
    worker_id = meta.get(HEADER_WORKER, "")
    key_id = meta.get(HEADER_KEY_ID, "")
    timestamp = meta.get(HEADER_TIMESTAMP, "")
    nonce = meta.get(HEADER_NONCE, "")
    content_sha256 = meta.get(HEADER_CONTENT_SHA256, "")
    match = _SIGNATURE_RE.match(meta.get("HTTP_AUTHORIZATION", ""))
    ip = meta.get("REMOTE_ADDR")

    # Failed authentications are limited per source IP, asked before any key is tried, so a
    # guesser gets 429s instead of answers. The per-worker budget is spent only once the request
    # names one of that worker's own key ids, and it only ever turns a *failed* attempt into a
    # 429: a correctly signed request is never refused for it, so whoever floods a worker's key
    # id with bad signatures, from however many addresses, cannot lock the real worker out
    # (docs/API.md, "Failed authentications").
    # With Redis the budgets are read by the nonce step's own round trip, which takes no nonce from
    # a spent IP (docs/PERFORMANCE.md, "The heartbeat, round two"); a request refused before that
    # step reads them first, so every answer is what asking first would have given.
    ip_key, worker_key = auth_failure_keys(ip=ip, worker_id=worker_id)
    failure_keys = [ip_key]
    limits = dict(_auth_failure_limits([ip_key, worker_key]))
    budgets: dict[str, Decision] | None = None

    def ip_throttled() -> RateLimited | None:
        """The 429 of a spent IP budget (reading the budgets now if no step has yet), or None."""
        nonlocal budgets
        if budgets is None:
            budgets = gcra_peek_each(limits=limits)
        if budgets[ip_key].allowed:
            return None
        logger.warning("worker auth throttled: worker=%.63s ip=%s", worker_id, ip)
        return RateLimited(budgets[ip_key].retry_after_s)

    if not budgets_read_with_nonce() and (refused := ip_throttled()):
        raise refused

    nonce_taken = False

    def fail(reason: str) -> Unauthorized | RateLimited:
        if refused := ip_throttled():
            return refused
        logger.warning("worker auth refused: reason=%s worker=%.63s key=%.40s ip=%s",
                       reason, worker_id, key_id, ip)
        if nonce_taken:
            nonce_forget(worker_id=worker_id, nonce=nonce)
        auth_failure_count(failure_keys)
        auth_failure_record(worker_id=worker_id or "-", reason=reason, ip=_ip_or_none(ip), key_id=key_id)
        spent = budgets[worker_key]  # type: ignore[index]  # read by ip_throttled()
        if worker_key in failure_keys and not spent.allowed:
            return RateLimited(spent.retry_after_s)
        return Unauthorized()

    if not (worker_id and key_id and timestamp and nonce and content_sha256 and match):
        raise fail("missing_or_malformed_headers")
    if not _NONCE_RE.match(nonce) or not _HEX64_RE.match(content_sha256):
        raise fail("malformed_nonce_or_hash")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise fail("malformed_timestamp") from None
    now = clock_now()
    if abs(now.timestamp() - sent_at) > _skew_limit():
        raise fail("clock_skew")
    try:
        body = request.body
    except RequestDataTooBig:
        raise (ip_throttled() or PayloadTooLarge()) from None
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), content_sha256):
        raise fail("body_hash_mismatch")

    taken = nonce_record(worker_id=worker_id, nonce=nonce, seen_at=now,
                         budgets=None if budgets is not None else limits)
    if taken.budgets is not None:
        budgets = taken.budgets
        if taken.gated:
            raise ip_throttled() or RateLimited(1.0)  # the script's test and ours are the same
    if not taken.fresh:
        raise fail("nonce_replayed")
    nonce_taken = True
    cached = credential_cached(key_id, generation=taken.generation)
    credential: WorkerCredential | None
    secret: str | None
    if cached is not None:
        credential, secret = cached
    else:
        credential = credential_read(key_id)
        secret = None
    if credential is None or credential.worker_id != worker_id:
        raise fail("unknown_key")
    # From here on the request holds one of this worker's key ids: its failures are the
    # worker's too.
    failure_keys.append(worker_key)
    if not key_usable(credential, now):
        raise fail(f"key_{credential.state}")

    canonical = string_to_sign(
        method=request.method or "", path=raw_path(request), query=meta.get("QUERY_STRING", ""),
        worker_id=worker_id, key_id=key_id, timestamp=timestamp, nonce=nonce,
        content_sha256=content_sha256,
    )
    if secret is None:
        secret = decrypt_secret(credential.secret_encrypted)
        credential_remember(credential=credential, secret=secret, generation=taken.generation)
    expected = compute_signature(secret, canonical)
    if not hmac.compare_digest(expected, match.group(1)):
        raise fail("bad_signature")

    worker = credential.worker
    if not worker.enabled:
        logger.warning("worker auth refused: reason=worker_disabled worker=%s", worker_id)
        raise WorkerDisabled()
    per_minute = worker.rate_limit_per_min
    decision = gcra_acquire(key=f"worker:{worker_id}", per_minute=per_minute,
                            burst=max(1, per_minute // 10))
    if not decision.allowed:
        raise RateLimited(decision.retry_after_s)
    if credential.state == CredentialState.PENDING and not credential_promote(
        credential=credential, ip=_ip_or_none(ip)
    ):
        # Another request promoted it first (fine), or staff revoked it meanwhile (refused).
        credential.refresh_from_db(fields=["state", "grace_until"])
        if not key_usable(credential, now):
            raise fail(f"key_{credential.state}")
    if credential_touch(credential=credential, at=now):
        credential_touched(key_id=key_id, at=now)
    return worker, credential


_BY_KEY_ID = f'"{WorkerCredential._meta.db_table}"."key_id" = %s'


def credential_read(key_id: str) -> WorkerCredential | None:
    """The key with its worker, as `select_related("worker").filter(key_id=...).first()` gives it, by
    a statement written once. It runs on every signed request whose process holds no current copy of
    the key, and on every woken long poll; Django compiling the queryset anew was two thirds of its
    CPU (docs/PERFORMANCE.md, "The credential read, written once")."""
    found = rows_together(FixedRead(WorkerCredential, _BY_KEY_ID, [key_id], related="worker"))[0]
    return found[0] if found else None


def signer_current(*, worker_id: str, key_id: str) -> Worker | None:
    """The worker, when the key that signed its request is still usable and the worker enabled.

    A long poll checked the signature when it began; before it hands out work after a wait it asks
    again, so a key revoked meanwhile (in any process) gets nothing (queueing/long_poll.py).
    """
    credential = credential_read(key_id)
    if credential is None or credential.worker_id != worker_id or not key_usable(credential, clock_now()):
        return None
    return credential.worker if credential.worker.enabled else None


def signed_headers_valid(*, worker_id: str, key_id: str, timestamp: str, nonce: str, content_sha256: str,
                         authorization: str) -> str | None:
    """The signature sent, when every signing header is present and well formed and the timestamp
    within the clock skew; else None. The first checks of `signed_request_authenticate`, as one pure
    test (the heartbeat's async lane, workers_mgmt/heartbeat_lane.py, leaves every refusal to it)."""
    match = _SIGNATURE_RE.match(authorization)
    if not (worker_id and key_id and timestamp and nonce and content_sha256 and match):
        return None
    if not _NONCE_RE.match(nonce) or not _HEX64_RE.match(content_sha256):
        return None
    try:
        sent_at = int(timestamp)
    except ValueError:
        return None
    if abs(clock_now().timestamp() - sent_at) > _skew_limit():
        return None
    return match.group(1)


def auth_failure_budgets(*, ip: str | None, worker_id: str) -> dict[str, tuple[float, int]]:
    """The failure budgets a signed request's nonce step reads: {per IP, per claimed worker}."""
    return dict(_auth_failure_limits(auth_failure_keys(ip=ip, worker_id=worker_id)))


def auth_failure_keys(*, ip: str | None, worker_id: str) -> list[str]:
    """The rate-limit keys of a failed authentication: [per source IP, per claimed worker id]."""
    return [f"authfail:ip:{ip or '-'}", f"authfail:worker:{worker_id[:63] or '-'}"]


def enroll_failure_key(*, ip: str | None) -> str:
    """Enrollment guesses have their own per-IP budget, apart from signed requests'."""
    return f"enrollfail:ip:{ip or '-'}"


def _limits() -> dict[str, tuple[float, int]]:
    from django.conf import settings

    return {
        "authfail:ip": (settings.LEADOPS_AUTH_FAILURES_IP_PER_MIN, settings.LEADOPS_AUTH_FAILURES_IP_BURST),
        "authfail:worker": (settings.LEADOPS_AUTH_FAILURES_WORKER_PER_MIN,
                            settings.LEADOPS_AUTH_FAILURES_WORKER_BURST),
        "enrollfail:ip": (settings.LEADOPS_ENROLL_FAILURES_IP_PER_MIN,
                          settings.LEADOPS_ENROLL_FAILURES_IP_BURST),
    }


def _auth_failure_limits(keys: list[str]) -> list[tuple[str, tuple[float, int]]]:
    limits = _limits()
    # A key is "<family>:<kind>:<who>"; the who part may hold colons (IPv6), the family never does.
    return [(key, limits[":".join(key.split(":", 2)[:2])]) for key in keys]


def auth_failures_blocked(keys: list[str]) -> Decision:
    """Whether any of these failure budgets (per IP, per worker, per enrolling IP) is used up."""
    return gcra_peek(limits=dict(_auth_failure_limits(keys)))


def auth_failure_count(keys: list[str]) -> None:
    for key, (per_minute, burst) in _auth_failure_limits(keys):
        gcra_acquire(key=key, per_minute=per_minute, burst=burst)


def _ip_or_none(ip: str | None) -> str | None:
    import ipaddress

    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


def _skew_limit() -> int:
    from django.conf import settings

    return settings.LEADOPS_CLOCK_SKEW_S


def key_usable(credential: WorkerCredential, now: dt.datetime) -> bool:
    if credential.state in (CredentialState.CURRENT, CredentialState.PENDING):
        return True
    if credential.state == CredentialState.PREVIOUS:
        return credential.grace_until is not None and now <= credential.grace_until
    return False


class IsWorker(BasePermission):
    """The request was signed by an enabled worker (set by WorkerSignatureAuthentication)."""

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.user, Worker)
