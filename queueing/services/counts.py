"""Jobs per (provider, state), maintained in the statement that changes them (the monitor's counts).

Database triggers on `queueing_job` append signed deltas to `queueing_jobstatecount` in the same
statement as every insert, delete and change of state or provider: enqueue, claim, report,
exchange, reaper, cancel, requeue, DLQ purge, the job pruner, campaign runs, admin edits, cascades
and raw SQL all count, and none of them sends a query more. The rows are only ever inserted (no
shared row is updated, so concurrent transitions never wait for each other or deadlock on a counter);
`job_state_counts_compact` folds them into one row per pair, and `job_state_counts_reconcile`
recounts from the jobs and adds the difference (docs/SYSTEM_OVERVIEW.md, "Job counts").
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections, transaction

from queueing.models import Job, JobStateCount

logger = logging.getLogger(__name__)

JOB = Job._meta.db_table
COUNTS = JobStateCount._meta.db_table
TRIGGERS = ("queueing_job_count_ins", "queueing_job_count_upd", "queueing_job_count_del")

# PostgreSQL: statement-level triggers with transition tables, so a claim of 50 jobs adds two rows
# (one per provider and state) in one INSERT, not 100.
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION queueing_job_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {COUNTS} (provider_id, state, delta)
        SELECT provider_id, state, count(*) FROM new_rows GROUP BY provider_id, state ORDER BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {COUNTS} (provider_id, state, delta)
        SELECT provider_id, state, -count(*) FROM old_rows GROUP BY provider_id, state ORDER BY 1, 2;
    ELSE
        INSERT INTO {COUNTS} (provider_id, state, delta)
        SELECT provider_id, state, sum(delta) FROM (
            SELECT o.provider_id, o.state, -1 AS delta FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.state <> n.state OR o.provider_id <> n.provider_id
            UNION ALL
            SELECT n.provider_id, n.state, 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.state <> n.state OR o.provider_id <> n.provider_id
        ) moved GROUP BY provider_id, state HAVING sum(delta) <> 0 ORDER BY 1, 2;
    END IF;
    RETURN NULL;
END $$;
"""
_PG_TRIGGERS = {
    "queueing_job_count_ins": f"CREATE TRIGGER queueing_job_count_ins AFTER INSERT ON {JOB} "
                              "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                              "EXECUTE FUNCTION queueing_job_count()",
    "queueing_job_count_upd": f"CREATE TRIGGER queueing_job_count_upd AFTER UPDATE ON {JOB} "
                              "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
                              "EXECUTE FUNCTION queueing_job_count()",
    "queueing_job_count_del": f"CREATE TRIGGER queueing_job_count_del AFTER DELETE ON {JOB} "
                              "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
                              "EXECUTE FUNCTION queueing_job_count()",
}
# SQLite has row triggers only; its single writer makes a row per change cheap and uncontended.
_SQLITE_TRIGGERS = {
    "queueing_job_count_ins": f"CREATE TRIGGER queueing_job_count_ins AFTER INSERT ON {JOB} BEGIN "
                              f"INSERT INTO {COUNTS} (provider_id, state, delta) "
                              "VALUES (NEW.provider_id, NEW.state, 1); END",
    "queueing_job_count_upd": f"CREATE TRIGGER queueing_job_count_upd AFTER UPDATE OF state, provider_id "
                              f"ON {JOB} WHEN OLD.state IS NOT NEW.state "
                              "OR OLD.provider_id IS NOT NEW.provider_id BEGIN "
                              f"INSERT INTO {COUNTS} (provider_id, state, delta) "
                              "VALUES (OLD.provider_id, OLD.state, -1), (NEW.provider_id, NEW.state, 1); END",
    "queueing_job_count_del": f"CREATE TRIGGER queueing_job_count_del AFTER DELETE ON {JOB} BEGIN "
                              f"INSERT INTO {COUNTS} (provider_id, state, delta) "
                              "VALUES (OLD.provider_id, OLD.state, -1); END",
}


def job_state_triggers_ensure(*, using: str = "default", **kwargs: Any) -> list[str]:
    """Create the count triggers that are missing (after every migrate); recount when any was.

    Run from post_migrate rather than only from a migration: SQLite drops a table's triggers when a
    migration rebuilds the table, and a squash must not lose them either.
    """
    db = connections[using]
    tables = db.introspection.table_names()
    if JOB not in tables or COUNTS not in tables:
        return []
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass", [JOB])
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [JOB])
        present = {row[0] for row in cursor.fetchall()}
        wanted = _PG_TRIGGERS if db.vendor == "postgresql" else _SQLITE_TRIGGERS
        missing = [name for name in TRIGGERS if name not in present]
        if not missing:
            return []
        with transaction.atomic(using=using):
            if db.vendor == "postgresql":
                cursor.execute(_PG_FUNCTION)
            for name in missing:
                cursor.execute(wanted[name])
    job_state_counts_reconcile(using=using)
    return missing


def job_state_counts_compact(*, using: str = "default") -> int:
    """Fold the delta rows into one row per (provider, state); returns how many rows were folded.

    PostgreSQL: one statement deletes the rows it sees and inserts their sums, so a transition that
    commits meanwhile (its rows invisible to this statement) is neither lost nor counted twice.
    """
    db = connections[using]
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(
                f"WITH gone AS (DELETE FROM {COUNTS} RETURNING provider_id, state, delta), "
                "folded AS (SELECT count(*) AS n FROM gone) "
                f"INSERT INTO {COUNTS} (provider_id, state, delta) "
                "SELECT provider_id, state, sum(delta) FROM gone GROUP BY provider_id, state "
                "HAVING sum(delta) <> 0 RETURNING (SELECT n FROM folded)"
            )
            rows = cursor.fetchall()
            return int(rows[0][0]) if rows else 0
        # SQLite has one writer: the rows up to the highest id are all there is to fold.
        with transaction.atomic(using=using):
            cursor.execute(f"SELECT max(id), count(*) FROM {COUNTS}")
            top, folded = cursor.fetchone()
            if top is None:
                return 0
            cursor.execute(f"SELECT provider_id, state, sum(delta) FROM {COUNTS} WHERE id <= %s "
                           "GROUP BY provider_id, state HAVING sum(delta) <> 0", [top])
            sums = cursor.fetchall()
            cursor.execute(f"DELETE FROM {COUNTS} WHERE id <= %s", [top])
            if sums:
                cursor.executemany(f"INSERT INTO {COUNTS} (provider_id, state, delta) VALUES (%s, %s, %s)",
                                   sums)
            return int(folded)


def job_state_counts_reconcile(*, using: str = "default") -> list[tuple[int, str, int]]:
    """Recount jobs per (provider, state) and add what the deltas missed; returns the corrections.

    One statement reads the jobs and the deltas from the same snapshot, so transitions committed
    after it (counted by their own deltas) are not corrected twice; nothing is locked. A correction
    means something wrote jobs without the triggers (say, they were dropped): it is logged.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {COUNTS} (provider_id, state, delta) "
            "SELECT provider_id, state, sum(n) FROM ("
            f"  SELECT provider_id, state, count(*) AS n FROM {JOB} GROUP BY provider_id, state"
            f"  UNION ALL SELECT provider_id, state, -sum(delta) FROM {COUNTS} GROUP BY provider_id, state"
            ") AS drift GROUP BY provider_id, state HAVING sum(n) <> 0 "
            "RETURNING provider_id, state, delta"
        )
        corrections = [(int(p), str(s), int(d)) for p, s, d in cursor.fetchall()]
    if corrections:
        logger.warning("job state counts corrected by a recount: %s", corrections)
    job_state_counts_compact(using=using)
    return corrections

