"""Migration operations the apps share."""

from __future__ import annotations

from typing import Any

from django.db import migrations


class PostgresOnlyRunSQL(migrations.RunSQL):
    """RunSQL on PostgreSQL only: SQLite has no plpgsql (there the model refuses changes itself)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def append_only_trigger(table: str, *, allow: str = "", errcode: str = "") -> PostgresOnlyRunSQL:
    """A PostgreSQL trigger that refuses every UPDATE and DELETE of `table`'s rows, whoever asks.

    `allow` is PL/pgSQL run first, which may `RETURN` to let a change through; `errcode` names the
    SQLSTATE of the refusal (default: raise_exception). TRUNCATE fires no row trigger.
    """
    using = f"\n        USING ERRCODE = '{errcode}'" if errcode else ""
    function = f"{table}_append_only"
    return PostgresOnlyRunSQL(
        f"""
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
BEGIN
{allow}    RAISE EXCEPTION '{table} is append-only (% refused)', TG_OP{using};
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER {function}
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {function}();
""",
        reverse_sql=f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();",
    )
