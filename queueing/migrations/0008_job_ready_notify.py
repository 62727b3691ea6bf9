"""PostgreSQL tells waiting long polls when a job turns ready (docs/API.md, "Long poll").

`NOTIFY leadops_job_ready` (delivered at commit, deduplicated within a transaction) whenever a job
becomes `queued` and due now, whatever made it so: an enqueue, a release, the reaper, a requeue, raw
SQL. Inserts are judged once per statement (a bulk enqueue notifies once); updates per row, where a
claim (state `leased`) fails the WHEN clause at the cost of one comparison. queueing/wakeup.py listens.
"""

from django.db import migrations

from core.migration_ops import PostgresOnlyRunSQL

FORWARDS = """
CREATE OR REPLACE FUNCTION queueing_job_ready_notify() RETURNS trigger AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        IF NOT EXISTS (SELECT 1 FROM ready_rows WHERE state = 'queued'
                                                  AND run_at <= now() + interval '1 second') THEN
            RETURN NULL;
        END IF;
    END IF;
    PERFORM pg_notify('leadops_job_ready', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER queueing_job_ready_on_insert
    AFTER INSERT ON queueing_job REFERENCING NEW TABLE AS ready_rows
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_job_ready_notify();
CREATE TRIGGER queueing_job_ready_on_update
    AFTER UPDATE OF state, run_at ON queueing_job
    FOR EACH ROW WHEN (NEW.state = 'queued' AND NEW.run_at <= now() + interval '1 second')
    EXECUTE FUNCTION queueing_job_ready_notify();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS queueing_job_ready_on_insert ON queueing_job;
DROP TRIGGER IF EXISTS queueing_job_ready_on_update ON queueing_job;
DROP FUNCTION IF EXISTS queueing_job_ready_notify();
"""


class Migration(migrations.Migration):

    dependencies = [
        ("queueing", "0007_job_state_count"),
    ]

    operations = [PostgresOnlyRunSQL(FORWARDS, BACKWARDS)]
