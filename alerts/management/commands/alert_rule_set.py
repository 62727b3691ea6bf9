"""alert_rule_set KIND [--threshold X] [--for-seconds S] [--enable|--disable] [--severity S]."""

from __future__ import annotations

from django.core.management.base import CommandError

from alerts.models import RuleKind, Severity
from alerts.rules import DEFAULTS
from alerts.services import AlertsError, rule_set
from core.audit import Actor
from core.commands import OneLineErrorCommand


class Command(OneLineErrorCommand):
    help = "Change a built-in alert rule: " + "; ".join(
        f"{kind}: threshold = {d.meaning}" for kind, d in DEFAULTS.items()
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=RuleKind.values, metavar="KIND")
        parser.add_argument("--threshold", type=float)
        parser.add_argument("--for-seconds", type=int)
        parser.add_argument("--severity", choices=Severity.values)
        switch = parser.add_mutually_exclusive_group()
        switch.add_argument("--enable", action="store_true")
        switch.add_argument("--disable", action="store_true")

    def handle(self, *args, kind, threshold, for_seconds, severity, enable, disable, **options):
        try:
            rule = rule_set(
                kind=kind,
                threshold=threshold,
                for_seconds=for_seconds,
                severity=severity,
                enabled=True if enable else False if disable else None,
                actor=Actor.command("alert_rule_set"),
            )
        except AlertsError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Rule {rule.kind}: {'enabled' if rule.enabled else 'disabled'}, threshold {rule.threshold:g} "
            f"({DEFAULTS[rule.kind].meaning}), for {rule.for_seconds} s, severity {rule.severity}."
        )
