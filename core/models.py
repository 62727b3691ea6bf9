"""The kernel's tables (limiter state, monotonic /metrics totals, the staff-action audit) and the
abstract models the apps build theirs on."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from core.choices import TextChoices


class _Attributes:
    def __init__(self, row: models.Model) -> None:
        self.row = row

    def __getitem__(self, name: str) -> Any:
        return getattr(self.row, name)


class Described(models.Model):
    """A row whose text is `str_format` filled from its attributes, with str.format's fields:
    `str_format = "{version} ({state})"`, `"{release.version}"`, `"{at:%Y-%m-%d %H:%M}"`. A text that
    needs code (a mask, a choice of words) is a `__str__` of its own."""

    str_format: ClassVar[str]

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.str_format.format_map(_Attributes(self))


class TimestampedModel(models.Model):
    """A row that knows when it was created and last saved."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class AuditRecord(models.Model):
    """A row of an audit trail: written once, with the moment it stands for; listed newest first.

    Its text is that moment and the fields named in `summary_fields`.
    """

    created_at = models.DateTimeField(db_index=True)

    summary_fields: ClassVar[tuple[str, ...]] = ()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return " ".join([f"{self.created_at:%Y-%m-%d %H:%M:%S}",
                         *(str(getattr(self, name)) for name in self.summary_fields)])


class AppendOnlyRecord(AuditRecord):
    """An audit row the ORM refuses to change or delete once written (a service writes it once)."""

    class Meta(AuditRecord.Meta):
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError(f"{self._meta.verbose_name_plural} are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"{self._meta.verbose_name_plural} are append-only")


class RateLimitState(Described):
    key = models.CharField(primary_key=True, max_length=200)
    # Unix seconds as a float: the limiter does its arithmetic in SQL on both databases.
    tat = models.FloatField()

    class Meta:
        verbose_name = "rate limit state"
        # Created by the leadops app before the kernel existed; the table keeps its name.
        db_table = "leadops_ratelimitstate"

    str_format = "{key}"


class MetricCounter(Described):
    """A monotonic total for /metrics (claims, reports, leads by outcome), kept in a few shards.

    Prometheus counters must never go down: totals derived from rows the pruner deletes would
    look like resets. Each event adds to one of the shard rows of its name (its connection's, see
    core/counters.py) in the transaction of the state change, so concurrent claims rarely wait on
    one row; a scrape sums a few dozen rows instead of aggregating the attempts table.
    """

    name = models.CharField(max_length=63)
    shard = models.PositiveSmallIntegerField()
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "shard"], name="metric_counter_name_shard")]

    str_format = "{name}[{shard}] = {value}"


class StaffSource(TextChoices):
    """The door a staff change came through."""

    ADMIN = "admin"
    COMMAND = "command", "Management command"
    API = "api", "Staff API"


class StaffAction(AuditRecord):
    """One staff change (who, what, which objects, each field before and after, when): append-only.

    Written by the service that makes the change, in the same transaction (docs/SYSTEM_OVERVIEW.md,
    "Staff actions"). Never edited or deleted from the admin.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    # The username (or "command:<name>") as it was: the user row may be renamed or deleted later.
    actor_name = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=16, choices=StaffSource.choices)
    action = models.CharField(max_length=63, db_index=True)
    object_type = models.CharField(max_length=63, db_index=True)
    # Space-separated ids of the objects touched (the first OBJECT_IDS_KEPT of them); `object_count`
    # says how many there were in all.
    object_ids = models.TextField(blank=True)
    object_count = models.PositiveIntegerField(default=0)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    OBJECT_IDS_KEPT = 1000
    summary_fields = ("actor_name", "action")

    class Meta(AuditRecord.Meta):
        indexes = [models.Index(fields=["object_type", "created_at"], name="staffaction_object_at")]
