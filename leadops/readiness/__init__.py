"""Go/No-Go: the seed's readiness gates, computed live from this installation's state.

Each gate is one module (`secrets`, `updates`, `breakers_dlq`, `alerts`, `privacy`, `throttling`)
that reads the apps through their selectors and answers a `Gate`: whether it holds, why in one line
an operator can act on, and links to the admin pages that show the evidence. What each gate checks
and how to make it hold: docs/PRODUCTION_READINESS.md.
"""

from leadops.readiness.base import Evidence, Gate
from leadops.readiness.evidence import STEPS, evidence_capture
from leadops.readiness.gates import GATES, Readiness, readiness_check
from leadops.readiness.page import readiness_view
from leadops.readiness.privacy import last_purge_at
from leadops.readiness.services import readiness_lost, readiness_record

__all__ = [
    "GATES", "STEPS", "Evidence", "Gate", "Readiness", "evidence_capture", "last_purge_at", "readiness_check",
    "readiness_lost", "readiness_record", "readiness_view",
]
