"""From a failure to its cause and remedy: failure clusters, the one remedy action, lead lineage.

The project package holds these because they read the queue, the releases, ingestion and alerts
together, and the remedy calls the services of three apps (docs/SYSTEM_OVERVIEW.md, "Layers";
docs/RUNBOOK.md, "Failure clusters").
"""

from leadops.failures.clusters import (
    BeganWith,
    FailureCluster,
    ReleaseHistory,
    cluster_find,
    failure_clusters,
)
from leadops.failures.fingerprint import failure_fingerprint, failure_message_normalize
from leadops.failures.lineage import LineageStep, dead_job_lineage, lead_lineage
from leadops.failures.remedy import RemedyDone, RemedyPlan, cluster_remedy, remedy_plan
from leadops.failures.views import (
    cluster_remedy_view,
    clusters_view,
    dead_job_lineage_view,
    lead_lineage_view,
)

__all__ = [
    "BeganWith", "FailureCluster", "LineageStep", "ReleaseHistory", "RemedyDone", "RemedyPlan",
    "cluster_find", "cluster_remedy", "cluster_remedy_view", "clusters_view", "dead_job_lineage",
    "dead_job_lineage_view", "failure_clusters", "failure_fingerprint", "failure_message_normalize",
    "lead_lineage", "lead_lineage_view", "remedy_plan",
]
