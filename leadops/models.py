"""Shared state of the leadops helpers: the GCRA limiter's theoretical arrival times."""

from django.db import models


class RateLimitState(models.Model):
    key = models.CharField(primary_key=True, max_length=200)
    # Unix seconds as a float: the limiter does its arithmetic in SQL on both databases.
    tat = models.FloatField()

    class Meta:
        verbose_name = "rate limit state"

    def __str__(self) -> str:
        return self.key


class MonitorEvent(models.Model):
    """The replay log of committed monitor events: SSE `Last-Event-ID` and catch-up across processes.

    The id only grows; a schedule keeps the newest `LEADOPS_MONITOR_EVENTS_KEEP` rows.
    """

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=40)
    at = models.DateTimeField()
    data = models.JSONField()

    class Meta:
        verbose_name = "monitor event"

    def __str__(self) -> str:
        return f"{self.pk} {self.type}"

    def as_event(self) -> dict:
        return {"id": self.pk, "type": self.type, "at": self.at.isoformat(), "data": self.data}


class WorkerOfflineNotice(models.Model):
    """The overdue heartbeat a `worker.offline` event was published for: one event per transition.

    A worker's silent streak is named by its last heartbeat time; a row that already holds that time
    means the offline event for this streak went out.
    """

    worker_id = models.CharField(primary_key=True, max_length=63)
    last_heartbeat_at = models.DateTimeField(null=True)
    announced_at = models.DateTimeField()

    class Meta:
        verbose_name = "worker offline notice"

    def __str__(self) -> str:
        return self.worker_id


class MetricCounter(models.Model):
    """A monotonic total for /metrics (claims, reports, leads by outcome), kept in a few shards.

    Prometheus counters must never go down: totals derived from rows the pruner deletes would
    look like resets. Each event adds to one of a few shard rows of its name (chosen at random) in
    the transaction of the state change, so concurrent claims rarely wait on one row; a scrape sums
    a handful of rows instead of aggregating the attempts table.
    """

    name = models.CharField(max_length=63)
    shard = models.PositiveSmallIntegerField()
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "shard"], name="metric_counter_name_shard")]

    def __str__(self) -> str:
        return f"{self.name}[{self.shard}] = {self.value}"
