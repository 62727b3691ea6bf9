"""Move a portal that started on SQLite to PostgreSQL, with all its data (docs/DEPLOY.md, "From SQLite").

    manage.py move_to_postgres --target postgres://user@host:5432/leadops

Run it with the portal stopped (no server, no q cluster, no workers writing), on the settings the
portal ran with: the same LEADOPS_SECRETS_KEY and LEADOPS_FINGERPRINT_KEY, since worker secrets stay
encrypted and fingerprints stay keyed exactly as they are. The target must be an empty database:
the command migrates it, copies every table in dependency order inside one transaction (the
foreign keys are checked at COMMIT), resets its sequences and compares the row counts; any
difference rolls the whole copy back. Then point DATABASE_URL at the target.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import Any

import environ
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction

TARGET = "move_target"
CHUNK_ROWS = 2000


class Command(BaseCommand):
    help = "Copy this portal's database (SQLite) into an empty PostgreSQL database, table by table."

    def add_arguments(self, parser):
        parser.add_argument("--target", required=True, help="postgres://user[:password]@host:port/name")

    def handle(self, *args: Any, target: str, **options: Any) -> None:
        if not target.startswith(("postgres://", "postgresql://", "pgsql://")):
            raise CommandError("--target must be a postgres:// URL")
        source = connections[DEFAULT_DB_ALIAS]
        if source.vendor == "postgresql":
            raise CommandError("this portal already runs on PostgreSQL")
        _target_register(target)
        try:
            if connections[TARGET].introspection.table_names():
                raise CommandError("the target database is not empty; create a new, empty one for the move")
            call_command("migrate", database=TARGET, interactive=False, verbosity=0)
            counts = database_copy(source_alias=DEFAULT_DB_ALIAS, target_alias=TARGET)
        finally:
            connections[TARGET].close()
        self.stdout.write(json.dumps({"tables": len(counts), "rows": sum(counts.values()), "copied": counts}))


def _target_register(url: str) -> None:
    config = environ.Env.db_url_config(url)
    # Defaults (autocommit, time zone...) filled in exactly as for the databases of the settings.
    configured = connections.configure_settings({DEFAULT_DB_ALIAS: connections.settings[DEFAULT_DB_ALIAS],
                                                 TARGET: config})
    connections.settings[TARGET] = configured[TARGET]


def copied_models() -> list[type[models.Model]]:
    """Every table Django manages, each after the tables its foreign keys point to."""
    tables = [model for model in apps.get_models(include_auto_created=True)
              if model._meta.managed and not model._meta.proxy]
    ordered: list[type[models.Model]] = []
    seen: set[type[models.Model]] = set()

    def visit(model: type[models.Model]) -> None:
        if model in seen:
            return
        seen.add(model)
        for field in model._meta.concrete_fields:
            related = field.related_model if field.is_relation else None
            if isinstance(related, type) and related is not model and related in tables:
                visit(related)
        ordered.append(model)

    for model in tables:
        visit(model)
    return ordered


def database_copy(*, source_alias: str, target_alias: str) -> dict[str, int]:
    """Copy every table; {table: rows}. Raises (and rolls back) when a count differs."""
    target = connections[target_alias]
    ordered = copied_models()
    counts: dict[str, int] = {}
    with transaction.atomic(using=target_alias):
        with target.cursor() as cursor:
            # `migrate` wrote its own rows (content types, permissions, schedules): the source's
            # rows replace them, with their ids, so every reference to them stays right.
            names = ", ".join(target.ops.quote_name(model._meta.db_table) for model in ordered)
            cursor.execute(f"TRUNCATE {names} CASCADE")
            # Rows that triggers derive from other rows (the job counts, kept by triggers on the
            # jobs table) are copied as they are, so the triggers must not derive them a second
            # time while the jobs land. USER leaves the foreign-key triggers on; they are checked
            # before the triggers come back (a table with pending checks cannot be altered).
            tables = [target.ops.quote_name(model._meta.db_table) for model in ordered]
            for table in tables:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for model in ordered:
                counts[model._meta.db_table] = _table_copy(model, source_alias=source_alias, cursor=cursor,
                                                           target=target)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in tables:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            for statement in target.ops.sequence_reset_sql(no_style(), ordered):
                cursor.execute(statement)
        for model in ordered:
            landed = model._base_manager.using(target_alias).count()
            if landed != counts[model._meta.db_table]:
                raise CommandError(f"{model._meta.db_table}: copied {counts[model._meta.db_table]} rows, "
                                   f"found {landed}; nothing was kept")
    return counts


def _table_copy(model: type[models.Model], *, source_alias: str, cursor: Any, target: Any) -> int:
    """Read through the fields (Python values) and write their database values, skipping `pre_save`.

    The ORM's insert would run `pre_save`, which stamps `auto_now` fields with the time of the move;
    writing `get_db_prep_save` values keeps every timestamp (and every encrypted value) as it was.
    """
    fields = list(model._meta.concrete_fields)
    columns = ", ".join(target.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {target.ops.quote_name(model._meta.db_table)} ({columns}) VALUES ({placeholders})"
    attnames = [field.attname for field in fields]
    source = model._base_manager.using(source_alias).order_by()
    rows = source.values_list(*attnames).iterator(chunk_size=CHUNK_ROWS)
    copied = 0
    for batch in _chunks(rows, CHUNK_ROWS):
        cursor.executemany(sql, [[field.get_db_prep_save(value, connection=target)
                                  for field, value in zip(fields, row, strict=True)] for row in batch])
        copied += len(batch)
    return copied


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch
