"""Settings for LeadOps, read from the environment (docs/DEPLOY.md).

Every setting has exactly one place: here. A `.env` file in the project folder is read when
present; in development, missing keys are generated once into `.dev-keys.env` (git-ignored).
Production (`DEBUG=False`) refuses to start unless the keys come from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from leadops.devkeys import REQUIRED_KEYS, load_or_create_dev_keys
from leadops.storage import default_storage_from_url

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Off unless asked for: `make run` and the test suite turn development mode on themselves
# (docs/DEPLOY.md, "Development mode").
DEBUG = env.bool("DEBUG", default=False)
# Development mode as the environment set it (docs/DEPLOY.md, "Development mode"). Django's test runner
# turns DEBUG off while tests run; what only production refuses (an email receiver without a mail
# server, docs/RUNBOOK.md "Setting up") reads this instead.
LEADOPS_DEVELOPMENT = DEBUG

# Keys: in production they must be real environment values; in development a local file keeps them
# stable across restarts so encrypted worker secrets stay readable.
_missing = [name for name in REQUIRED_KEYS if not os.environ.get(name)]
if _missing:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Production settings (DEBUG=False) need these keys in the environment: "
            + ", ".join(_missing)
            + ". On a development checkout, set DEBUG=true (or put it in .env) and development keys "
            "are generated (docs/DEPLOY.md, 'Development mode')."
        )
    for _name, _value in load_or_create_dev_keys(BASE_DIR / ".dev-keys.env").items():
        os.environ.setdefault(_name, _value)

SECRET_KEY = env.str("SECRET_KEY")
LEADOPS_SECRETS_KEY = env.str("LEADOPS_SECRETS_KEY")
LEADOPS_FINGERPRINT_KEY = env.str("LEADOPS_FINGERPRINT_KEY")
LEADOPS_SIGNING_KEY = env.str("LEADOPS_SIGNING_KEY")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "leadops.admin_config.LeadOpsAdminConfig",  # django.contrib.admin with the operator's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_q",
    "channels",
    "core",
    "leadops",
    "workers_mgmt",
    "ingestion",
    "queueing",
    "releases_app",
    "alerts",
]

MIDDLEWARE = [
    "leadops.middleware.BodySizeLimitMiddleware",
    "leadops.middleware.QueryStringNulMiddleware",
    "leadops.middleware.ApiErrorShapeMiddleware",
    "leadops.metrics.RequestLatencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "leadops.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "leadops.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "leadops.urls"
ASGI_APPLICATION = "leadops.asgi.application"
WSGI_APPLICATION = "leadops.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite by default (one file in the project folder), PostgreSQL through DATABASE_URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE transactions take the write lock at
    # BEGIN so two claims can never both read the same queued rows; the busy timeout makes a
    # writer wait for the lock instead of failing at once.
    # Tests keep their SQLite database in a file, so a live daphne process can share it.
    # The process id keeps concurrent test runs in one checkout apart.
    _db.setdefault("TEST", {}).setdefault("NAME", str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3"))
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
            ),
        }
    )
elif _db["ENGINE"] in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
    _db["ENGINE"] = "django.db.backends.postgresql"
    if env.bool("LEADOPS_DB_POOL", default=True):
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("LEADOPS_DB_POOL_MIN", default=2),
            "max_size": env.int("LEADOPS_DB_POOL_MAX", default=20),
            "timeout": 10,
        }
        _db["CONN_MAX_AGE"] = 0
        # Check a pooled connection before handing it out: one the server closed (a restart, a
        # failover, pg_terminate_backend) is replaced instead of failing the request that drew it.
        _db["CONN_HEALTH_CHECKS"] = True
    else:
        _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # Parameters sent apart from the statement, and a statement run a few times on a connection
    # prepared there, as psycopg does by default: PostgreSQL then parses and plans each hot statement
    # once per connection, not on every run (docs/PERFORMANCE.md, "Statements planned once"). Django
    # turns both off for poolers: set false behind PgBouncer in transaction mode older than 1.21 or
    # without `max_prepared_statements` (docs/DEPLOY.md).
    if env.bool("LEADOPS_DB_PREPARE", default=True):
        _db.setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})
    # Django's backend, whose pool checks all its idle connections once it finds one dead and whose
    # cursor's row count holds in a pipelined block (core/db/postgresql/base.py).
    _db["ENGINE"] = "core.db.postgresql"
# PostgreSQL: the exchange and the claim send statements whose answers they do not read without
# waiting for them (core/db/pipeline.py; docs/PERFORMANCE.md, "Round trips"): 16 round trips an
# exchange instead of 24. Off by default until it measures as a win (on one host it did not).
LEADOPS_DB_PIPELINE = env.bool("LEADOPS_DB_PIPELINE", default=False)
# A pooled connection given back less than this long ago, with nothing arrived on its socket since,
# is lent without the health check's round trip (core/db/postgresql/base.py; docs/DEPLOY.md). 0: always check.
LEADOPS_DB_CHECK_BYPASS_S = env.float("LEADOPS_DB_CHECK_BYPASS_S", default=0.5)
IS_POSTGRES = _db["ENGINE"] in ("django.db.backends.postgresql", "core.db.postgresql")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# App (daphne) processes of the whole deployment, when the operator says; unset, the checks assume the
# documented layout, one per CPU core (leadops/checks.py; docs/DEPLOY.md, "Settings checks").
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=None)
# Namespaces this deployment's keys in a shared Redis (and keeps test runs apart).
LEADOPS_REDIS_PREFIX = env.str("LEADOPS_REDIS_PREFIX", default="leadops")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Groups (the live monitor's) are namespaced like every other key in a shared Redis.
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{LEADOPS_REDIS_PREFIX}:asgi"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# django-q2: the ORM broker on the default database, or Redis when it is configured.
Q_CLUSTER = {
    "name": "leadops",
    "workers": env.int("LEADOPS_Q_WORKERS", default=2),
    "timeout": 60,
    "retry": 120,
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 250,
    "poll": 1,
    "label": "Scheduled tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Riyadh")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STORAGE_DIR = Path(env.str("LEADOPS_STORAGE_DIR", default=str(BASE_DIR / "storage")))

# Release artifacts (docs/RELEASES.md, "Releases") and evidence screenshots go through Django's
# storage API: a folder by default (git-ignored), an S3-compatible bucket through django-storages
# when several app nodes serve them, chosen by LEADOPS_STORAGE_URL (docs/DEPLOY.md, "Files with
# several app nodes").
MEDIA_ROOT = env.str("LEADOPS_MEDIA_ROOT", default=str(BASE_DIR / "media"))
MEDIA_URL = "media/"
LEADOPS_STORAGE_URL = env.str("LEADOPS_STORAGE_URL", default="")
# Where the servers and the backups are (a place and a provider, e.g. "Riyadh, KSA (provider X)"): the
# record of processing names them as the transfers of personal data (docs/PRIVACY.md, "Record of processing").
LEADOPS_SERVER_LOCATION = env.str("LEADOPS_SERVER_LOCATION", default="")
LEADOPS_BACKUP_LOCATION = env.str("LEADOPS_BACKUP_LOCATION", default="")
STORAGES = {
    "default": default_storage_from_url(LEADOPS_STORAGE_URL),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# The largest artifact accepted, and the most its members may unpack to (a zip bomb stops here).
LEADOPS_MAX_RELEASE_BYTES = env.int("LEADOPS_MAX_RELEASE_BYTES", default=300 * 1024 * 1024)
# One screenshot per upload (docs/API.md, "Evidence"); stored beside the release artifacts.
LEADOPS_MAX_EVIDENCE_BYTES = env.int("LEADOPS_MAX_EVIDENCE_BYTES", default=512 * 1024)
LEADOPS_MAX_RELEASE_UNPACKED_BYTES = env.int("LEADOPS_MAX_RELEASE_UNPACKED_BYTES", default=2 * 1024 ** 3)

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="leadops@localhost")

# Protocol limits (docs/API.md).
LEADOPS_MAX_BODY_BYTES = env.int("LEADOPS_MAX_BODY_BYTES", default=5 * 1024 * 1024)
LEADOPS_MAX_LEADS_PER_REPORT = env.int("LEADOPS_MAX_LEADS_PER_REPORT", default=1000)
# Protocol v1.1 exchange: most report items per request, and most leads over all its items.
LEADOPS_MAX_EXCHANGE_REPORTS = env.int("LEADOPS_MAX_EXCHANGE_REPORTS", default=50)
LEADOPS_MAX_LEADS_PER_EXCHANGE = env.int("LEADOPS_MAX_LEADS_PER_EXCHANGE", default=5000)
# Seconds a server process keeps a usable signing key (and its worker) in memory; 0 turns it off.
# A revoked key or a disabled worker is refused by other processes at most this much later.
LEADOPS_CREDENTIAL_CACHE_S = env.float("LEADOPS_CREDENTIAL_CACHE_S", default=5.0)
LEADOPS_CLOCK_SKEW_S = env.int("LEADOPS_CLOCK_SKEW_S", default=300)
LEADOPS_NONCE_TTL_S = env.int("LEADOPS_NONCE_TTL_S", default=600)
LEADOPS_IDEMPOTENCY_TTL_H = env.int("LEADOPS_IDEMPOTENCY_TTL_H", default=48)
# Succeeded and cancelled jobs are deleted this many days after they finished (0: kept for good).
LEADOPS_JOB_RETENTION_DAYS = env.int("LEADOPS_JOB_RETENTION_DAYS", default=30)
# While workers pull, a process runs the lease reaper from the pull path at most this often, so a
# lapsed lease is claimable again within lease + this (docs/SYSTEM_OVERVIEW.md, "The lease reaper").
LEADOPS_REAP_ON_PULL_S = env.float("LEADOPS_REAP_ON_PULL_S", default=10.0)
LEADOPS_DEDUP_SCOPE = env.str("LEADOPS_DEDUP_SCOPE", default="day")
LEADOPS_DEFAULT_RATE_LIMIT_PER_MIN = env.int("LEADOPS_DEFAULT_RATE_LIMIT_PER_MIN", default=600)
LEADOPS_MAX_PULL = 50
# Worker secrets: the grace of a rotated-out key, the life of an enrollment token, and
# the budget of failed authentications (GCRA: per minute, with a burst) per source IP and per
# claimed worker id, so guessing is slow.
LEADOPS_ROTATION_GRACE_HOURS = env.float("LEADOPS_ROTATION_GRACE_HOURS", default=24.0)
LEADOPS_ENROLLMENT_TTL_HOURS = env.float("LEADOPS_ENROLLMENT_TTL_HOURS", default=24.0)
LEADOPS_AUTH_FAILURES_IP_PER_MIN = env.int("LEADOPS_AUTH_FAILURES_IP_PER_MIN", default=20)
LEADOPS_AUTH_FAILURES_IP_BURST = env.int("LEADOPS_AUTH_FAILURES_IP_BURST", default=10)
LEADOPS_AUTH_FAILURES_WORKER_PER_MIN = env.int("LEADOPS_AUTH_FAILURES_WORKER_PER_MIN", default=60)
LEADOPS_AUTH_FAILURES_WORKER_BURST = env.int("LEADOPS_AUTH_FAILURES_WORKER_BURST", default=30)
LEADOPS_AUTH_FAILURE_RETENTION_DAYS = env.int("LEADOPS_AUTH_FAILURE_RETENTION_DAYS", default=30)
LEADOPS_ENROLL_FAILURES_IP_PER_MIN = env.int("LEADOPS_ENROLL_FAILURES_IP_PER_MIN", default=10)
LEADOPS_ENROLL_FAILURES_IP_BURST = env.int("LEADOPS_ENROLL_FAILURES_IP_BURST", default=5)
# Live monitoring: a worker is offline when its heartbeat is older than this; the replay
# log keeps this many newest events for SSE Last-Event-ID; /metrics accepts this bearer token (empty:
# staff sessions only).
LEADOPS_HEARTBEAT_OVERDUE_S = env.int("LEADOPS_HEARTBEAT_OVERDUE_S", default=120)
# Any signed request refreshes a worker's liveness, at most once per this many seconds per worker
# (docs/API.md, "Liveness"); keep it well under LEADOPS_HEARTBEAT_OVERDUE_S.
# Connections per server process to Redis; a request waits up to the timeout for one (core/redis.py).
LEADOPS_REDIS_MAX_CONNECTIONS = env.int("LEADOPS_REDIS_MAX_CONNECTIONS", default=64)
LEADOPS_REDIS_POOL_TIMEOUT_S = env.float("LEADOPS_REDIS_POOL_TIMEOUT_S", default=5.0)
LEADOPS_LIVENESS_REFRESH_S = env.int("LEADOPS_LIVENESS_REFRESH_S", default=15)
# Long polls (docs/API.md, "Long poll"): each server process's longest waiter retries its claim this
# often even without a wake-up (jobs whose backoff ended, a breaker that closed, a quota refilled).
LEADOPS_LONG_POLL_PROBE_S = env.float("LEADOPS_LONG_POLL_PROBE_S", default=2.0)
# Threads per server process that run the claims of woken long polls (a waiter holds none).
LEADOPS_LONG_POLL_THREADS = env.int("LEADOPS_LONG_POLL_THREADS", default=4)
# The heartbeat on the event loop (leadops/heartbeat_lane.py; docs/DEPLOY.md, "The heartbeat lane"):
# with PostgreSQL and Redis, an accepted heartbeat is answered without Django's request path, on at
# most this many database connections of its own per server process.
LEADOPS_HEARTBEAT_LANE = env.bool("LEADOPS_HEARTBEAT_LANE", default=True)
LEADOPS_HEARTBEAT_LANE_CONNECTIONS = env.int("LEADOPS_HEARTBEAT_LANE_CONNECTIONS", default=2)
LEADOPS_MONITOR_EVENTS_KEEP = env.int("LEADOPS_MONITOR_EVENTS_KEEP", default=10_000)
LEADOPS_METRICS_TOKEN = env.str("LEADOPS_METRICS_TOKEN", default="")
# Alerts (docs/DEPLOY.md, "Alerts"): Alertmanager's three timers and how often the evaluator looks.
# Seconds, fractions allowed (tests and benches shorten them).
LEADOPS_ALERT_GROUP_WAIT_S = env.float("LEADOPS_ALERT_GROUP_WAIT_S", default=15.0)
LEADOPS_ALERT_GROUP_INTERVAL_S = env.float("LEADOPS_ALERT_GROUP_INTERVAL_S", default=120.0)
LEADOPS_ALERT_REPEAT_INTERVAL_S = env.float("LEADOPS_ALERT_REPEAT_INTERVAL_S", default=14400.0)
LEADOPS_ALERT_EVAL_INTERVAL_S = env.float("LEADOPS_ALERT_EVAL_INTERVAL_S", default=10.0)
# Failure clusters (docs/RUNBOOK.md): a cluster whose first failure comes this soon after a rollout
# step of its release "began with" that release.
LEADOPS_CLUSTER_ROLLOUT_WINDOW_S = env.int("LEADOPS_CLUSTER_ROLLOUT_WINDOW_S", default=7200)

# The portal's own address as staff reach it (https://ops.example.com): notifications link to admin pages
# under it (acknowledge, silence, screenshot, log tail); empty: the links are paths only (alerts.W002).
LEADOPS_PUBLIC_URL = env.str("LEADOPS_PUBLIC_URL", default="").rstrip("/")
# Go/No-Go (docs/PRODUCTION_READINESS.md): the oldest a worker's current key may be, and how many
# jobs the dead-letter queue may gain in an hour while the installation counts as ready.
LEADOPS_READINESS_KEY_MAX_AGE_DAYS = env.int("LEADOPS_READINESS_KEY_MAX_AGE_DAYS", default=90)
LEADOPS_READINESS_DLQ_GROWTH_PER_HOUR = env.int("LEADOPS_READINESS_DLQ_GROWTH_PER_HOUR", default=20)
# The Chromium `evidence_capture` screenshots admin with (empty: `chromium` on PATH, if any).
LEADOPS_CHROMIUM = env.str("LEADOPS_CHROMIUM", default="")
# An SMTP server that does not answer must not stall the evaluator (Django's default is no timeout).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# Django refuses to read a larger body; the middleware answers 413 before that in the protocol shape.
DATA_UPLOAD_MAX_MEMORY_SIZE = LEADOPS_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.FastJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LeadOps worker protocol",
    "DESCRIPTION": "Signed HTTP API between LeadOps and its scraping workers (protocol v1).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "leadops.openapi.add_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # The PII filter sits on the handler, so records propagated from every logger are masked.
    "filters": {"pii": {"()": "core.logging.PiiMaskingFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["pii"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # httpx logs every request's full URL at INFO; a Slack or Teams webhook URL is a credential.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# Security headers on every answer, in every mode (docs/DEPLOY.md, "Security settings").
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = env.str("SECURE_REFERRER_POLICY", default="same-origin")
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# The admin's pages (leadops.middleware.ContentSecurityPolicyMiddleware): scripts only from this site.
LEADOPS_CSP = env.str("LEADOPS_CSP", default=(
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
))

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Joining the browsers' preload list is a deliberate, hard-to-undo choice for the operator
        # (DEPLOY.md); not preloading is not a misconfiguration, so the check stays quiet.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    # The header (and value) the TLS-terminating proxy sets; empty when daphne itself is reached over
    # TLS with no proxy in front (then nothing a client sends can claim HTTPS).
    # A value that is not a header and a value is kept as it is for leadops.E004 to name.
    _proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=["HTTP_X_FORWARDED_PROTO", "https"])
    if _proxy_ssl_header:
        SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header)
