"""The seed's evidence pack: per gate, the records that prove it, dated, with an index.

`evidence_capture --out DIR [--step NAME]...` writes `DIR/<YYYY-MM-DD>/<step>/...` and
`DIR/<YYYY-MM-DD>/index.md` (docs/PRODUCTION_READINESS.md, "Reading the evidence pack"). Nothing
written holds secret material: keys are named by their ids, receivers by their names, and every
text file except the manifests (which must stay byte for byte as served, and hold no personal data)
goes through the log masking filter once more.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from alerts import selectors as alert_selectors
from core.logging import mask_pii
from core.models import StaffAction
from leadops.readiness.gates import GATES, Readiness, readiness_check
from leadops.readiness.privacy import masking_samples
from leadops.readiness.screenshots import Screenshots, chromium_at_hand
from queueing import selectors as queue_selectors
from releases_app import selectors as release_selectors
from releases_app.models import Channel
from releases_app.services import channel_manifest_ensure
from releases_app.signing import signing_keys
from workers_mgmt import selectors as worker_selectors

STEPS = list(GATES)


@dataclass
class StepFiles:
    """What one step wrote, relative to the dated folder."""

    step: str
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Pack:
    def __init__(self, root: Path, step: str) -> None:
        self.root = root
        self.record = StepFiles(step)
        (root / step).mkdir(parents=True, exist_ok=True)

    def write_bytes(self, name: str, data: bytes) -> None:
        (self.root / self.record.step / name).write_bytes(data)
        self.record.files.append(f"{self.record.step}/{name}")

    def write_json(self, name: str, value: Any) -> None:
        text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
        self.write_bytes(name, (mask_pii(text) + "\n").encode())

    def write_jsonl(self, name: str, rows: Iterable[dict[str, Any]]) -> None:
        lines = [mask_pii(json.dumps(row, ensure_ascii=False, sort_keys=True, default=str)) for row in rows]
        self.write_bytes(name, ("\n".join(lines) + ("\n" if lines else "")).encode())


def _secrets(pack: Pack, now: dt.datetime) -> None:
    pack.write_jsonl("credential-audit.jsonl", worker_selectors.credential_audit_rows())
    pack.write_json("rotations.json", {"captured_at": now.isoformat(),
                                       "rotations": worker_selectors.rotations_count(),
                                       "missing_from_audit": worker_selectors.rotations_missing_from_audit(),
                                       "stuck": worker_selectors.rotations_stuck(now=now)})


def _updates(pack: Pack, now: dt.datetime) -> None:
    # The API's renderer (REST_FRAMEWORK's default): the bytes match what a worker downloads.
    renderer = JSONRenderer()
    for channel in Channel.objects.order_by("name"):
        if channel.current_id is None and not channel.manifest:
            continue
        # What GET /api/v1/releases/<channel>/latest.json answers now, rendered by the same renderer.
        manifest = channel_manifest_ensure(channel=channel)
        pack.write_bytes(f"latest-{channel.name}.json", renderer.render(manifest))
    keys = signing_keys()
    pack.write_json("signing-public-key.json", {
        "key_id": keys[0].key_id, "public_key": keys[0].public_b64, "algorithm": "ed25519",
        "keys": [{"key_id": key.key_id, "public_key": key.public_b64} for key in keys]})
    pack.write_json("rollout-history.json", {"captured_at": now.isoformat(),
                                             "rollouts": release_selectors.rollout_history()})


def _breakers_dlq(pack: Pack, now: dt.datetime) -> None:
    # A file per capture: two captures (before and after a change) sit side by side.
    pack.write_json(f"capture-{timezone.localtime(now):%H%M%S}.json", {
        "captured_at": now.isoformat(),
        "breakers": queue_selectors.breaker_rows(),
        "dlq": queue_selectors.dlq_stats(),
        "dlq_by_provider_and_error": queue_selectors.dlq_counts_by_provider_and_reason(),
    })


def _alerts(pack: Pack, now: dt.datetime) -> None:
    pack.write_json("rules.json", alert_selectors.rule_rows())
    rows = alert_selectors.delivery_log_rows(since=now - dt.timedelta(days=30))
    pack.write_jsonl("delivery-log.jsonl", rows)


def _privacy(pack: Pack, now: dt.datetime) -> None:
    runs = (StaffAction.objects.filter(action__in=["retention.purge", "retention.purge_dry_run"])
            .order_by("-created_at")[:100])
    pack.write_json("retention-runs.json", [
        {"at": run.created_at.isoformat(), "action": run.action, "actor": run.actor_name,
         "deleted": run.object_count, "counts": run.detail.get("counts"), "days": run.detail.get("days")}
        for run in runs])
    pack.write_json("masking-samples.json", masking_samples())


def _throttling(pack: Pack, now: dt.datetime) -> None:
    pack.write_json("quotas.json", {"captured_at": now.isoformat(),
                                    "providers": queue_selectors.provider_quotas()})


WRITERS: dict[str, Callable[[Pack, dt.datetime], None]] = {
    "secrets": _secrets,
    "updates": _updates,
    "breakers_dlq": _breakers_dlq,
    "alerts": _alerts,
    "privacy": _privacy,
    "throttling": _throttling,
}


def evidence_capture(*, out: Path, steps: list[str] | None = None, now: dt.datetime | None = None) -> Path:
    """Write the evidence pack of `steps` (default: every gate) under out/<local date>/; return it."""
    now = now or timezone.now()
    steps = steps or STEPS
    root = out / timezone.localdate(now).isoformat()
    root.mkdir(parents=True, exist_ok=True)
    readiness = readiness_check(now=now, only=steps)
    records = []
    for step in steps:
        pack = Pack(root, step)
        WRITERS[step](pack, now)
        records.append(pack.record)
    chromium = chromium_at_hand(settings.LEADOPS_CHROMIUM)
    shots_note = ""
    if chromium.path is None:
        shots_note = f"Screenshots skipped: {chromium.reason}."
    else:
        shots = Screenshots(chromium.path)
        shots_note = shots.capture(root=root, readiness=readiness, records={r.step: r for r in records})
        shots_note += "".join(f"\n\n- overview: [{name}]({name})" for name in shots.overview)
    (root / "index.md").write_text(mask_pii(_index(readiness, records, shots_note)), encoding="utf-8")
    return root


def _index(readiness: Readiness, records: list[StepFiles], shots_note: str) -> str:
    gates = {gate.name: gate for gate in readiness.gates}
    lines = [
        f"# Evidence pack, {timezone.localtime(readiness.checked_at):%Y-%m-%d %H:%M:%S %Z}",
        "",
        f"Captured at {readiness.checked_at.isoformat()}. Verdict of these gates: "
        f"**{'GO' if readiness.go else 'NO-GO'}**. How to read it: docs/PRODUCTION_READINESS.md.",
        "",
        shots_note,
        "",
    ]
    for record in records:
        gate = gates[record.step]
        verdict = "holds" if gate.ok else "does not hold"
        lines += [f"## {record.step}", "", f"- gate: `{gate.name}`, {verdict}", f"- why: {gate.why}"]
        lines += [f"- admin: [{link.label}]({link.url})" for link in gate.evidence]
        lines += [f"- file: [{name}]({name})" for name in record.files]
        lines += [f"- {note}" for note in record.notes]
        lines.append("")
    return "\n".join(lines)
