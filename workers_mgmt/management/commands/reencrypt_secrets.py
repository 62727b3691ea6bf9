"""reencrypt_secrets: re-encrypt every worker secret under the first key of LEADOPS_SECRETS_KEY."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from workers_mgmt.services import credentials_reencrypt


class Command(BaseCommand):
    help = ("Re-encrypt every stored worker secret with the first key of LEADOPS_SECRETS_KEY, so an "
            "older key can then be removed from the list.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, as_json: bool, **options):
        changed = credentials_reencrypt()
        if as_json:
            self.stdout.write(json.dumps({"reencrypted": changed}))
        else:
            self.stdout.write(f"{changed} secret(s) re-encrypted under the first key.")
