"""erasure_receipt ID: print an erasure receipt as JSON, for the requester (it holds no number in clear)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import OneLineErrorCommand
from ingestion.models import ErasureReceipt
from ingestion.privacy import receipt_document


class Command(OneLineErrorCommand):
    help = "Print an erasure receipt (classes, row counts, when, by whom, the number's HMAC) as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        receipt = ErasureReceipt.objects.filter(pk=options["id"]).first()
        if receipt is None:
            raise CommandError(f"erasure_receipt: no receipt {options['id']}")
        self.stdout.write(json.dumps(receipt_document(receipt=receipt), ensure_ascii=False, indent=2))
