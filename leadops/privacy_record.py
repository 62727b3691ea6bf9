"""The record of processing, generated from the live configuration (`privacy_record`).

Purposes and the description of each data class are written here; everything else is read when the
record is made: the retention in force (Admin › Retention policies), the providers (sources), the
alert receivers and who may export (recipients), where data is stored, the locations settings
(transfers) and the protections switched on (docs/PRIVACY.md, "Record of processing"). It is an
engineering record for the operator's own, not legal advice.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone

from alerts.models import Receiver
from leadops.models import DataClass
from leadops.retention import retention_days
from queueing.models import Provider

NOT_LEGAL_ADVICE = (
    "Generated from the portal's configuration as an engineering record; it is not legal advice. "
    "Have your counsel review it against PDPL and its implementing regulations."
)

PURPOSES = [
    {
        "purpose": "Business lead generation",
        "data": "business names, phone numbers, addresses, categories and ratings from public listings",
        "basis": "publicly available source (PDPL art. 10); review with counsel",
    },
    {
        "purpose": "De-duplication and do-not-contact",
        "data": "keyed hashes of phone numbers (fingerprints, suppression list)",
        "basis": "honouring objections and erasures",
    },
    {
        "purpose": "Answering data-subject requests and breaches",
        "data": "requests (number hashed and masked), erasure receipts, the breach register",
        "basis": "legal obligation",
    },
    {
        "purpose": "Operating and securing the service",
        "data": "worker IP addresses, staff accounts, the "
        "staff-action audit, credential audit, logs (numbers masked)",
        "basis": "security of processing",
    },
]

# What each retention class holds of people (None: no personal data).
CLASS_PERSONAL: dict[str, str | None] = {
    DataClass.LEADS: "names, phone numbers, addresses, free text of public listings",
    DataClass.FINGERPRINTS: "keyed hashes of phone numbers",
    DataClass.COUNTERS: None,
    DataClass.ATTEMPTS: "job payloads and worker error texts (should hold none)",
    DataClass.RECEIPTS: None,
    DataClass.DEAD_JOBS: "job payloads and worker error texts (should hold none)",
    DataClass.BREAKER_AUDIT: "the staff user who forced a change",
    DataClass.NONCES: None,
    DataClass.RATE_LIMIT_STATES: None,
    DataClass.AUTH_FAILURES: "client IP addresses",
    DataClass.CREDENTIAL_AUDIT: "staff user names, client IP addresses",
    DataClass.MONITOR_EVENTS: None,
    DataClass.STAFF_AUDIT: "staff user names; numbers masked and hashed",
    DataClass.ALERT_HISTORY: None,
    DataClass.EVIDENCE: "screenshots of public pages, masked log tails",
}
# Kept until staff act: no retention class (docs/PRIVACY.md).
KEPT_UNTIL_DELETED = [
    {
        "class": "data_subject_requests",
        "personal": "number as keyed hash and masked form, channel, notes",
        "retention": "until deleted by an administrator (the record that a request was answered)",
    },
    {
        "class": "erasure_receipts",
        "personal": "number as keyed hash and masked form",
        "retention": "until deleted by an administrator (proof of erasure)",
    },
    {
        "class": "suppression_list",
        "personal": "number as keyed hash and masked form",
        "retention": "until the number is taken off the list",
    },
    {
        "class": "breach_register",
        "personal": "none by design: describe, do not copy, the data",
        "retention": "until deleted by an administrator",
    },
    {
        "class": "staff_accounts",
        "personal": "user names, e-mail addresses, password hashes",
        "retention": "until deleted by an administrator",
    },
    {
        "class": "workers",
        "personal": "last IP address of each worker host",
        "retention": "until the worker is deleted",
    },
]


def _period(days: int | None) -> str:
    return "kept until deleted (no retention)" if days is None else f"{days} days"


def _users_with(codename: str) -> list[str]:
    app_label, name = codename.split(".")
    granted = (
        Q(is_superuser=True)
        | Q(user_permissions__codename=name, user_permissions__content_type__app_label=app_label)
        | Q(groups__permissions__codename=name, groups__permissions__content_type__app_label=app_label)
    )
    users = User.objects.filter(granted, is_active=True, is_staff=True).distinct().order_by("username")
    return list(users.values_list("username", flat=True))


def _storage() -> list[dict[str, Any]]:
    database = settings.DATABASES["default"]
    engine = database["ENGINE"].rsplit(".", 1)[-1]
    files = settings.STORAGES["default"]
    options = files.get("OPTIONS", {})
    if "bucket_name" in options:
        where = (
            f"S3-compatible bucket {options['bucket_name']} ({options.get('endpoint_url') or 'AWS'}), private"
        )
    else:
        where = f"folder {options.get('location') or settings.MEDIA_ROOT}"
    redis = urlsplit(settings.REDIS_URL).hostname if settings.REDIS_URL else None
    return [
        {
            "what": "database (every table above)",
            "where": f"{engine} {database.get('HOST') or 'local'} {database.get('NAME')}",
        },
        {"what": "files: release artifacts, evidence screenshots", "where": where},
        {
            "what": "cache, nonces, rate limits, task broker (no lead data)",
            "where": f"Redis at {redis}" if redis else "none (the database)",
        },
        {"what": "backups of the database and files", "where": settings.LEADOPS_BACKUP_LOCATION or "not set"},
    ]


def _receivers() -> list[Receiver]:
    return list(Receiver.objects.order_by("name"))


def _recipients() -> dict[str, Any]:
    receivers = [
        {
            "name": r.name,
            "kind": r.kind,
            "enabled": r.enabled,
            "destination": r.url_hint
            or f"{len([a for a in r.addresses.split(',') if a.strip()])} e-mail address(es)",
            "personal_data": "none: alerts carry ids, counts and rule names",
        }
        for r in _receivers()
    ]
    return {
        "alert_receivers": receivers,
        "exports": [
            {
                "export": "lead export (CSV, JSON Lines; admin, leads_export), suppressed numbers left out",
                "who": _users_with("ingestion.export_lead"),
                "note": "masked unless the user also has view_pii",
            },
            {
                "export": "data-subject export (admin, privacy_export)",
                "who": _users_with("ingestion.view_pii"),
                "note": "sent to the person after checking who they are",
            },
        ],
    }


def _transfers() -> list[dict[str, str]]:
    transfers = [
        {
            "what": "all personal data (the servers)",
            "where": settings.LEADOPS_SERVER_LOCATION or "not set: set LEADOPS_SERVER_LOCATION",
        },
        {
            "what": "backups",
            "where": settings.LEADOPS_BACKUP_LOCATION or "not set: set LEADOPS_BACKUP_LOCATION",
        },
    ]
    transfers += [
        {"what": f"alert notifications to {r.name} (no personal data)", "where": r.url_hint}
        for r in _receivers()
        if r.enabled and r.url_hint
    ]
    return transfers


def _security() -> list[dict[str, Any]]:
    logging_config: dict[str, Any] = settings.LOGGING
    handlers: dict[str, dict[str, Any]] = logging_config.get("handlers", {})
    masked_logs = bool(handlers) and all("pii" in h.get("filters", []) for h in handlers.values())
    days = retention_days()
    return [
        {
            "measure": "secrets encrypted at rest (worker secrets, receiver URLs; LEADOPS_SECRETS_KEY)",
            "in_force": bool(settings.LEADOPS_SECRETS_KEY),
        },
        {
            "measure": "numbers hashed with a secret key (fingerprints, suppression, requests, receipts)",
            "in_force": bool(settings.LEADOPS_FINGERPRINT_KEY),
        },
        {"measure": "numbers masked in every log handler (PiiMaskingFilter)", "in_force": masked_logs},
        {
            "measure": "numbers masked for staff without view_pii",
            "in_force": True,
            "detail": f"{len(_users_with('ingestion.view_pii'))} staff user(s) see numbers in full",
        },
        {
            "measure": "every staff change and export audited (StaffAction)",
            "in_force": True,
            "detail": f"kept {_period(days[DataClass.STAFF_AUDIT])}",
        },
        {
            "measure": "HTTPS only (redirect, secure cookies, HSTS)",
            "in_force": bool(
                getattr(settings, "SECURE_SSL_REDIRECT", False)
                and getattr(settings, "SESSION_COOKIE_SECURE", False)
            ),
        },
    ]


def privacy_record() -> dict[str, Any]:
    """The record of processing as of now, from the live configuration."""
    days = retention_days()
    classes = [
        {
            "class": name,
            "label": label,
            "retention_days": days[name],
            "retention": _period(days[name]),
            "personal": CLASS_PERSONAL.get(name),
        }
        for name, label in DataClass.choices
    ]
    return {
        "generated_at": timezone.now().isoformat(),
        "not_legal_advice": NOT_LEGAL_ADVICE,
        "purposes": PURPOSES,
        "data_classes": classes,
        "kept_until_deleted": KEPT_UNTIL_DELETED,
        "sources": [
            {"provider": p.name, "enabled": p.enabled, "what": "public listings, scraped by workers"}
            for p in Provider.objects.order_by("name")
        ],
        "recipients": _recipients(),
        "storage": _storage(),
        "transfers": _transfers(),
        "security": _security(),
    }


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            ", ".join(v) if isinstance(v, list) else ("-" if v is None else str(v))
            for v in (row.get(c) for c in columns)
        ]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return [*lines, ""]


def privacy_record_markdown(record: dict[str, Any]) -> str:
    """The same record as Markdown, for people."""
    lines = [
        "# Record of processing",
        "",
        f"Generated {record['generated_at']}. {record['not_legal_advice']}",
        "",
    ]
    sections: list[tuple[str, list[dict[str, Any]], list[str]]] = [
        ("Purposes", record["purposes"], ["purpose", "data", "basis"]),
        (
            "Data classes and retention in force",
            record["data_classes"],
            ["class", "label", "retention", "personal"],
        ),
        ("Kept until deleted", record["kept_until_deleted"], ["class", "personal", "retention"]),
        ("Sources (providers)", record["sources"], ["provider", "enabled", "what"]),
        (
            "Recipients: alert receivers",
            record["recipients"]["alert_receivers"],
            ["name", "kind", "enabled", "destination", "personal_data"],
        ),
        ("Recipients: exports", record["recipients"]["exports"], ["export", "who", "note"]),
        ("Storage", record["storage"], ["what", "where"]),
        ("Transfers (where data goes)", record["transfers"], ["what", "where"]),
        ("Security measures", record["security"], ["measure", "in_force", "detail"]),
    ]
    for title, rows, columns in sections:
        lines += [f"## {title}", "", *_table(rows, columns)]
    return "\n".join(lines)
