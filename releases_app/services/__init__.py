"""Every write of releases, channels, rollouts and pins (docs/RELEASES.md tells the model).

Each state change is one transaction that locks the channel row (on SQLite every transaction takes
the write lock at BEGIN, so the same holds there), writes its `ReleaseAuditEvent` and publishes a
`rollout.changed` monitor event on commit. A manifest is re-signed, with a higher sequence, in the
same transaction as the change that alters what it says. One module per concern; the public names
are re-exported here.
"""

from __future__ import annotations

from releases_app.services.base import (
    DEFAULT_CHANNELS,
    DEFAULT_GATES,
    DEFAULT_HOLD_S,
    MANIFEST_SCHEMA,
    ReleaseRefused,
)
from releases_app.services.fleet import (
    update_report_record,
    worker_pin_clear,
    worker_pin_set,
)
from releases_app.services.gates import (
    GateOutcome,
    GateResult,
    rollout_gate_check,
    rollout_gate_evaluate,
    rollouts_evaluate,
)
from releases_app.services.manifests import (
    channel_get_or_create,
    channel_manifest_ensure,
    channel_manifest_sign,
    manifests_refresh,
    release_download_path,
    release_entry,
)
from releases_app.services.releases import (
    release_publish,
    release_revoke,
    release_self_test,
)
from releases_app.services.rollouts import (
    channel_rollback,
    default_steps,
    rollout_abort,
    rollout_pause,
    rollout_promote,
    rollout_resume,
    rollout_start,
    steps_validate,
    worker_rank_key,
)

__all__ = [
    "DEFAULT_CHANNELS",
    "DEFAULT_GATES",
    "DEFAULT_HOLD_S",
    "MANIFEST_SCHEMA",
    "GateOutcome",
    "GateResult",
    "ReleaseRefused",
    "channel_get_or_create",
    "channel_manifest_ensure",
    "channel_manifest_sign",
    "channel_rollback",
    "default_steps",
    "manifests_refresh",
    "release_download_path",
    "release_entry",
    "release_publish",
    "release_revoke",
    "release_self_test",
    "rollout_abort",
    "rollout_gate_check",
    "rollout_gate_evaluate",
    "rollout_pause",
    "rollout_promote",
    "rollout_resume",
    "rollout_start",
    "rollouts_evaluate",
    "steps_validate",
    "update_report_record",
    "worker_pin_clear",
    "worker_pin_set",
    "worker_rank_key",
]
