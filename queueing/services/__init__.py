"""Every write of the job queue: enqueue, claim, extend, release, report, reap, cancel, requeue.

Each function is one transaction. State changes are compare-and-swap (`filter(state=X).update()`
with a count check) or happen under a row lock, never read-modify-write across two queries.

One module per concern; the public names are re-exported here, so callers import
`queueing.services` (or `from queueing import services`) and never a submodule.
"""

from queueing.services.breakers import (
    BREAKER_BUCKET_S,
    WORKER_BREAKER_POLICY,
    BreakerAction,
    breaker_force,
    breaker_outcomes_purge,
    breaker_reset,
)
from queueing.services.campaign_runs import (
    campaign_schedule_pause,
    campaign_schedule_resume,
    campaign_schedules_run,
)
from queueing.services.claim import Claim, PullResult, jobs_pull
from queueing.services.counts import (
    job_state_counts_compact,
    job_state_counts_reconcile,
    job_state_triggers_ensure,
)
from queueing.services.enqueue import (
    backoff_delay_s,
    campaign_create,
    campaign_enqueue,
    campaign_run_enqueue,
    campaign_update,
    jobs_enqueue,
    provider_get_or_create,
    provider_policy_set,
    provider_update,
)
from queueing.services.errors import (
    AttemptNotFound,
    AttemptNotOwned,
    AttemptSuperseded,
    EvidenceLimitReached,
    EvidenceTypeUnsupported,
    EvidenceUndecodable,
    IdempotencyKeyReused,
    JobFinished,
    JobNotFound,
)
from queueing.services.evidence import evidence_purge, evidence_upload, log_tails_purge
from queueing.services.exchange import reports_exchange
from queueing.services.leases import job_lease_extend, jobs_release, leases_reap
from queueing.services.maintenance import (
    PRUNABLE_STATES,
    breaker_transitions_purge,
    dead_jobs_purge,
    finished_jobs_prune,
    receipts_purge,
)
from queueing.services.outcome import (
    MAX_LOG_TAIL_BYTES,
    ReportCall,
    ReportMove,
    ReportOutcome,
    ReportResult,
    ReportTotals,
    log_tail_masked,
    report_outcome_decide,
    reports_apply,
)
from queueing.services.report import job_report, report_request_hash
from queueing.services.staff import (
    dead_jobs_delete,
    dead_jobs_requeue,
    dlq_purge,
    dlq_requeue,
    jobs_cancel,
    jobs_moved_publish,
    jobs_requeue,
)

__all__ = [
    "BREAKER_BUCKET_S",
    "MAX_LOG_TAIL_BYTES",
    "PRUNABLE_STATES",
    "WORKER_BREAKER_POLICY",
    "AttemptNotFound",
    "AttemptNotOwned",
    "AttemptSuperseded",
    "BreakerAction",
    "Claim",
    "EvidenceLimitReached",
    "EvidenceTypeUnsupported",
    "EvidenceUndecodable",
    "IdempotencyKeyReused",
    "JobFinished",
    "JobNotFound",
    "PullResult",
    "ReportCall",
    "ReportMove",
    "ReportOutcome",
    "ReportResult",
    "ReportTotals",
    "backoff_delay_s",
    "breaker_force",
    "breaker_outcomes_purge",
    "breaker_reset",
    "breaker_transitions_purge",
    "campaign_create",
    "campaign_enqueue",
    "campaign_run_enqueue",
    "campaign_schedule_pause",
    "campaign_schedule_resume",
    "campaign_schedules_run",
    "campaign_update",
    "dead_jobs_delete",
    "dead_jobs_purge",
    "dead_jobs_requeue",
    "dlq_purge",
    "dlq_requeue",
    "evidence_purge",
    "evidence_upload",
    "finished_jobs_prune",
    "job_lease_extend",
    "job_report",
    "job_state_counts_compact",
    "job_state_counts_reconcile",
    "job_state_triggers_ensure",
    "jobs_cancel",
    "jobs_enqueue",
    "jobs_moved_publish",
    "jobs_pull",
    "jobs_release",
    "jobs_requeue",
    "leases_reap",
    "log_tail_masked",
    "log_tails_purge",
    "provider_get_or_create",
    "provider_policy_set",
    "provider_update",
    "receipts_purge",
    "report_outcome_decide",
    "report_request_hash",
    "reports_apply",
    "reports_exchange",
]
