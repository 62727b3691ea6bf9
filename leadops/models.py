"""The live monitor's replay log (the project's only model)."""

from django.db import models


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
