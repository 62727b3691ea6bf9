"""rotate_worker_secret ID [--grace-hours H] [--emergency] [--manual] [--json].

The contract: docs/RUNBOOK.md, "Management commands".

Push mode (the default) prints only the new key id: the secret travels in the worker's next
heartbeat answer. With --manual or --emergency the new credential is printed this once.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from core.audit import Actor
from workers_mgmt.models import Worker
from workers_mgmt.services import RotationInProgress, credential_rotate, credential_rotate_emergency


class Command(BaseCommand):
    help = "Rotate a worker's secret: push (default), --manual (shown once) or --emergency (revoke all now)."

    def add_arguments(self, parser):
        parser.add_argument("worker_id")
        parser.add_argument("--grace-hours", type=float, default=None, dest="grace_hours",
                            help="How long the replaced key keeps working after the new one is used "
                                 "(default LEADOPS_ROTATION_GRACE_HOURS, 24).")
        parser.add_argument("--emergency", action="store_true",
                            help="Revoke every key of the worker now and print one new key.")
        parser.add_argument("--manual", action="store_true",
                            help="Print the pending key for a manual install instead of pushing it.")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, worker_id: str, grace_hours: float | None, emergency: bool, manual: bool,
               as_json: bool, **options):
        if emergency and manual:
            raise CommandError("--emergency and --manual exclude each other.")
        if emergency and grace_hours is not None:
            raise CommandError("--grace-hours has no meaning with --emergency (old keys stop at once).")
        if grace_hours is not None and grace_hours < 0:
            raise CommandError("--grace-hours cannot be negative.")
        worker = Worker.objects.filter(pk=worker_id).first()
        if worker is None:
            raise CommandError(f"Worker {worker_id!r} does not exist.")
        actor = Actor.command("rotate_worker_secret")
        if emergency:
            issued = credential_rotate_emergency(worker=worker, actor=actor)
            self._print_credential(issued, as_json, "Emergency rotation: every older key is revoked.")
            return
        try:
            issued = credential_rotate(worker=worker, actor=actor, mode="manual" if manual else "push",
                                       grace_hours=grace_hours)
        except RotationInProgress as exc:
            raise CommandError(str(exc)) from None
        if manual:
            self._print_credential(issued, as_json, "Install this key on the worker; its first request "
                                                    "with it promotes it.")
        elif as_json:
            self.stdout.write(json.dumps({"worker_id": issued.worker_id, "key_id": issued.key_id,
                                          "mode": "push"}))
        else:
            self.stdout.write(f"Pending key {issued.key_id} for {issued.worker_id}: it is pushed in the "
                              "worker's next heartbeat and promoted on first use.")

    def _print_credential(self, issued, as_json: bool, note: str) -> None:
        if as_json:
            self.stdout.write(json.dumps(issued.as_dict()))
        else:
            self.stdout.write(f"worker_id: {issued.worker_id}\nkey_id:    {issued.key_id}\n"
                              f"secret:    {issued.secret}\n{note} The secret is not shown again.")
