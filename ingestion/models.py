"""Leads, their dedup fingerprints and the hourly ingestion counters.

Only leads that were *added* (first of their fingerprint) or *invalid* (no usable phone) become
`Lead` rows. A duplicate is counted in `IngestCounter` but never stored: storing it would grow the
table by the duplicate rate (about 30% of what the fleet reports) for no use, and keep personal data
the portal already holds once. Every reported lead is therefore in exactly one of: a `Lead` with a
fingerprint (added), a `Lead` without one (invalid), or a duplicate count.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.choices import TextChoices
from core.logging import mask_pii
from core.models import Described
from ingestion.choices import PhoneType


class Lead(models.Model):
    """One business lead as a worker reported it, with its phone normalized once at ingestion.

    The reported `phone` is kept verbatim in `phone_raw`; `phone_e164` is null when the phone is not
    usable (not even a possible number), which is what makes the lead count as invalid.
    """

    # The reported fields (docs/API.md).
    name = models.CharField(max_length=500)
    phone_raw = models.CharField(max_length=100, blank=True)
    # The city's display name (ingestion/cities.py: "Riyadh" for "الرياض", "ar-riyadh", ...); the
    # spelling the worker reported is kept in `city_raw`, the key the filter uses in `city_normalized`.
    city = models.CharField(max_length=200, blank=True)
    city_raw = models.CharField(max_length=200, blank=True)
    category = models.CharField(max_length=200, blank=True)
    address = models.CharField(max_length=1000, blank=True)
    website = models.CharField(max_length=2048, blank=True)
    # Provenance: scraped leads rely on having come from a public source (PDPL Art. 10).
    source_url = models.CharField(max_length=2048, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    lat = models.FloatField(null=True, blank=True)
    lng = models.FloatField(null=True, blank=True)
    rating = models.FloatField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)

    # Normalized once at the boundary.
    # NULL, not "", means "no usable phone": it is what makes a lead invalid, and what keeps it out of
    # phone lookups.
    phone_e164 = models.CharField(max_length=20, null=True, blank=True)  # noqa: DJ001
    phone_valid = models.BooleanField(default=False)
    phone_type = models.CharField(max_length=24, choices=PhoneType.choices, default=PhoneType.UNKNOWN)
    phone_region = models.CharField(max_length=3, blank=True)
    name_normalized = models.CharField(max_length=500, blank=True)
    city_normalized = models.CharField(max_length=200, blank=True)

    # Where the lead came from. Plain values, not foreign keys: ingestion depends on no other app.
    provider = models.CharField(max_length=63)
    worker_id = models.CharField(max_length=63)
    job_id = models.BigIntegerField(null=True, blank=True)
    attempt_id = models.UUIDField(null=True, blank=True)

    # The calendar day of TIME_ZONE when the lead was received: per-day dedup, retention and the
    # admin day filter all follow it, not the UTC date.
    local_day = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["provider"], name="ingestion_lead_provider_idx"),
            models.Index(fields=["worker_id"], name="ingestion_lead_worker_idx"),
            models.Index(fields=["city_normalized"], name="ingestion_lead_city_idx"),
            models.Index(fields=["local_day"], name="ingestion_lead_day_idx"),
            models.Index(fields=["phone_e164"], name="ingestion_lead_e164_idx"),
        ]
        permissions = [
            ("export_lead", "Can export leads (CSV, JSONL)"),
            # Without it staff see phones masked (+9665****4567) everywhere (docs/PRIVACY.md).
            ("view_pii", "Can see full phone numbers and download data-subject exports"),
        ]

    def __str__(self) -> str:
        # Masked: this text lands in page titles, breadcrumbs and the admin log, whoever is looking.
        return mask_pii(f"{self.name} ({self.phone_e164 or 'invalid phone'})")

    @property
    def phone(self) -> str:
        """Return the phone as reported (the protocol's `phone` field)."""
        return self.phone_raw


class LeadFingerprint(models.Model):
    """The dedup key of an added lead: HMAC-SHA256(key, scope + "|" + E.164), unique.

    The unique constraint is the truth about what was added: the ingest service counts the rows
    its insert actually created. `lead` points at the lead that was added first; it becomes null
    when that lead is erased, while the fingerprint keeps deduplicating (it holds no phone).
    """

    # The fingerprint is the primary key: one unique index instead of two on the table every
    # report inserts into.
    fingerprint = models.CharField(max_length=64, primary_key=True)
    # The local date (ISO) for per-day dedup, or "all" for cross-day dedup. Not indexed on purpose:
    # only a daily retention purge filters on it, and every report would pay for the index.
    scope = models.CharField(max_length=10)
    # No database constraint: the ingest statement creates the lead and its fingerprint together,
    # and a deferred foreign-key check would re-read every added lead at COMMIT (one trigger call and
    # one row lock per lead, about 2 ms of PostgreSQL CPU per 500-lead report). Deleting a lead
    # through the ORM still sets this to null (on_delete runs in Django, not in the database).
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                             db_constraint=False)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.fingerprint[:12]}… ({self.scope})"


class IngestCounter(Described):
    """Counts of one hour of ingestion for one provider and worker, upserted in the ingest transaction.

    The hour is truncated in local time (then stored as an aware datetime), so every bucket lies
    inside one local day even in time zones with a half-hour offset; `local_day` names that day and
    lets the 7-day trend group without any time-zone arithmetic in SQL.
    """

    hour = models.DateTimeField()
    local_day = models.DateField()
    provider = models.CharField(max_length=63)
    worker_id = models.CharField(max_length=63)
    added = models.BigIntegerField(default=0)
    # duplicates == duplicates_in_batch + duplicates_existing, kept whole for cheap reads.
    duplicates = models.BigIntegerField(default=0)
    duplicates_in_batch = models.BigIntegerField(default=0)
    duplicates_existing = models.BigIntegerField(default=0)
    invalid = models.BigIntegerField(default=0)
    # Reported leads whose phone is on the suppression list: counted, never stored (docs/PRIVACY.md).
    suppressed = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "provider", "worker_id"], name="ingestion_counter_bucket_uniq"
            ),
        ]
        indexes = [models.Index(fields=["local_day"], name="ingestion_counter_day_idx")]

    str_format = "{hour:%Y-%m-%d %H:00} {provider}/{worker_id}"


class SuppressedPhone(models.Model):
    """A number that must never be stored again (do-not-contact, an erasure): its keyed hash only.

    `digest` is HMAC-SHA256(LEADOPS_FINGERPRINT_KEY, E.164), so the list itself holds no number; a
    report's lead whose E.164 hashes to a listed digest is counted `suppressed` and nothing of it is
    stored. `phone_masked` (+9665****4567) lets staff tell entries apart without the number.
    """

    digest = models.CharField(max_length=64, primary_key=True)
    phone_masked = models.CharField(max_length=32, blank=True)
    reason = models.CharField(max_length=500)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "suppressed phone"
        verbose_name_plural = "suppression list"

    def __str__(self) -> str:
        return f"{self.phone_masked or self.digest[:12]} ({self.reason})"


class PrivacyCase(Described):
    """A case of the privacy registers (a data-subject request, a breach): opened by staff, kept once
    closed, as the record of what was done (docs/PRIVACY.md)."""

    closed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class RequestKind(TextChoices):
    ACCESS = "access", "Access (a copy of the data)"
    CORRECTION = "correction"
    ERASURE = "erasure"
    OBJECTION = "objection", "Objection / opt-out"


class RequestChannel(TextChoices):
    EMAIL = "email", "E-mail"
    PHONE = "phone", "Phone call"
    LETTER = "letter"
    WEB_FORM = "web_form"
    IN_PERSON = "in_person"
    OTHER = "other"


class RequestStatus(TextChoices):
    OPEN = "open"
    EXTENDED = "extended", "Open, extended"
    CLOSED = "closed", "Closed (answered)"
    REFUSED = "refused", "Closed (refused, with reasons)"


class DataSubjectRequest(PrivacyCase):
    """A person's request about their number (PDPL: answered within 30 days, extendable once by 30).

    The number is kept as its keyed hash (`phone_hmac`, the suppression list's digest) and its masked
    form, never in clear: staff type it again when they act on it, and the service checks that it
    hashes to this request (docs/PRIVACY.md, "Data-subject requests").
    """

    kind = models.CharField(max_length=16, choices=RequestKind.choices)
    channel = models.CharField(max_length=16, choices=RequestChannel.choices)
    phone_hmac = models.CharField(max_length=64, db_index=True)
    phone_masked = models.CharField(max_length=32)
    reference = models.CharField(max_length=200, blank=True, help_text="Your ticket or letter reference.")
    notes = models.TextField(blank=True, help_text="No phone numbers here: they are masked on save.")
    received_at = models.DateTimeField()
    due_at = models.DateTimeField(help_text="30 days after receipt; moved once by an extension.")
    extended_days = models.PositiveSmallIntegerField(default=0)
    extension_reason = models.CharField(max_length=500, blank=True)
    extended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.OPEN)
    outcome = models.CharField(max_length=1000, blank=True)

    class Meta:
        verbose_name = "data-subject request"
        ordering = ["due_at"]
        indexes = [models.Index(fields=["status", "due_at"], name="ingestion_dsr_open_due_idx")]

    str_format = "DSR-{pk} {kind} {phone_masked}"

    @property
    def is_open(self) -> bool:
        return self.status in (RequestStatus.OPEN, RequestStatus.EXTENDED)


class RequestActionKind(TextChoices):
    EXPORT = "export", "Export file"
    ERASURE = "erasure", "Erasure (receipt)"
    SUPPRESSION = "suppression"
    EXTENSION = "extension"
    CLOSURE = "closure"


class RequestAction(Described):
    """What was done for a request, in order: exports, erasures, suppressions, the extension, closure."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=16, choices=RequestActionKind.choices)
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=150)
    # Counts, file name and SHA-256 of an export, the receipt id: never a number in clear.
    detail = models.JSONField(default=dict, blank=True)
    receipt = models.ForeignKey("ErasureReceipt", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")

    class Meta:
        ordering = ["at", "id"]

    str_format = "{kind} at {at:%Y-%m-%d %H:%M}"


class ErasureReceipt(Described):
    """Proof of one erasure that holds no number: what classes, how many rows, when, by whom, the HMAC.

    The requester can be given it (`erasure_receipt` command, admin download); they can check the HMAC
    only through us, who hold the key, which is the point: the receipt alone reveals nothing.
    """

    phone_hmac = models.CharField(max_length=64, db_index=True)
    phone_masked = models.CharField(max_length=32)
    counts = models.JSONField(default=dict, help_text="Rows erased per data class.")
    suppressed = models.BooleanField(default=False)
    reason = models.CharField(max_length=500)
    erased_by = models.CharField(max_length=150)
    erased_at = models.DateTimeField(default=timezone.now)
    request = models.ForeignKey(DataSubjectRequest, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="receipts")

    class Meta:
        ordering = ["-erased_at"]

    str_format = "Erasure receipt {pk} ({phone_masked})"


class BreachIncident(PrivacyCase):
    """A personal-data breach: what happened and the 72-hour clock from discovery to notification.

    The alert `breach_deadline` fires 48 and 72 hours after `discovered_at` while `notified_at` is
    empty (docs/PRIVACY.md, "Breach register").
    """

    title = models.CharField(max_length=200)
    description = models.TextField(help_text="What happened, as known now.")
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="When it began, if known.")
    discovered_at = models.DateTimeField(help_text="When we became aware: the 72-hour clock starts here.")
    data_classes = models.TextField(help_text="Data classes affected, one per line (leads: phones, names).")
    approx_subjects = models.PositiveIntegerField(null=True, blank=True, help_text="People affected, about.")
    approx_records = models.PositiveIntegerField(null=True, blank=True, help_text="Records affected, about.")
    consequences = models.TextField(blank=True, help_text="Likely consequences for the people.")
    actions = models.TextField(blank=True, help_text="Measures taken or proposed.")
    contact = models.CharField(max_length=300, blank=True, help_text="Who the authority may contact.")
    notified_at = models.DateTimeField(null=True, blank=True, help_text="When the authority was notified.")
    notification_reference = models.CharField(max_length=200, blank=True)
    subjects_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "breach incident"
        ordering = ["-discovered_at"]

    str_format = "Breach {pk}: {title}"
