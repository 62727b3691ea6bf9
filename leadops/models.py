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
