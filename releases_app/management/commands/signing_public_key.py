"""signing_public_key [--json]: the manifest key id(s) and raw Ed25519 public key(s), base64."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from releases_app.signing import signing_keys


class Command(BaseCommand):
    help = "Print the key id and public key worker packages trust to verify channel manifests."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, as_json: bool, **options):
        keys = signing_keys()
        first = keys[0]
        if as_json:
            # The first key is the one to trust; during a rotation `keys` lists every key that signs.
            self.stdout.write(json.dumps({
                "key_id": first.key_id, "public_key": first.public_b64, "algorithm": "ed25519",
                "keys": [{"key_id": key.key_id, "public_key": key.public_b64} for key in keys],
            }))
            return
        for key in keys:
            self.stdout.write(f"{key.key_id} {key.public_b64}")
