"""provider_set NAME [--enable|--disable] [--max-attempts N] [--lease-seconds S] [--quota-per-min R]
[--burst B] [--daily-cap D]."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from core.audit import Actor
from core.commands import OneLineErrorCommand
from queueing.services import provider_policy_set


class Command(OneLineErrorCommand):
    help = ("Create or change a provider's policy. --quota-per-min 0 or --daily-cap 0 removes that "
            "limit.")

    def add_arguments(self, parser):
        parser.add_argument("name")
        switch = parser.add_mutually_exclusive_group()
        switch.add_argument("--enable", action="store_true")
        switch.add_argument("--disable", action="store_true")
        parser.add_argument("--max-attempts", type=int)
        parser.add_argument("--lease-seconds", type=int)
        parser.add_argument("--quota-per-min", type=int)
        parser.add_argument("--burst", type=int)
        parser.add_argument("--daily-cap", type=int)

    def handle(self, *args, name: str, enable: bool, disable: bool, max_attempts: int | None,
               lease_seconds: int | None, quota_per_min: int | None, burst: int | None,
               daily_cap: int | None, **options):
        for flag, value in (("--quota-per-min", quota_per_min), ("--daily-cap", daily_cap)):
            if value is not None and value < 0:
                raise CommandError(f"{flag} must be 0 (no limit) or a positive number.")
        try:
            provider, created = provider_policy_set(
                name=name, enabled=True if enable else False if disable else None,
                max_attempts=max_attempts, lease_seconds=lease_seconds, quota_per_min=quota_per_min,
                quota_burst=burst, daily_cap=daily_cap, actor=Actor.command("provider_set"),
            )
        except ValidationError as exc:
            problems = [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
            raise CommandError("; ".join(problems)) from None
        quota = f"{provider.quota_per_min}/min burst {provider.quota_burst}" if provider.quota_per_min \
            else "no rate limit"
        cap = f"daily cap {provider.daily_cap}" if provider.daily_cap else "no daily cap"
        self.stdout.write(
            f"{'Created' if created else 'Updated'} provider {provider.name}: "
            f"{'enabled' if provider.enabled else 'disabled'}, max_attempts {provider.max_attempts}, "
            f"lease {provider.lease_seconds} s, {quota}, {cap}."
        )
