"""The demo release of `make run` (leadops/devserver.py): a rollout a newcomer can watch move.

It uses a channel of its own, `demo`, whose workers are the devserver's updating demo workers, so
the channels of the real (or simulated) fleet are never changed by starting the development server.
The canary step asks for approval: once the canary runs the release and the gates pass, the rollout
waits for a human in Admin › Rollouts (a living picture, not one that is over in three minutes). Its
changes are logged as the demo (`Actor.demo()`), never as the signed-in admin.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable

from django.utils import timezone

from core.audit import Actor
from releases_app.models import Channel, Release, Rollout
from releases_app.services import ReleaseRefused, release_publish, rollout_promote, rollout_start

DEMO_PREFIX = "demo-"
DEMO_CHANNEL = "demo"


def demo_artifact(version: str) -> bytes:
    """A tiny but real worker artifact: worker-manifest.json and an entrypoint."""
    buffer = io.BytesIO()
    files = {
        "worker-manifest.json": json.dumps({"version": version, "entrypoint": "bin/worker.js",
                                            "node": "20.11.1"}).encode(),
        "bin/worker.js": f"console.log('LeadOps demo worker {version}');\n".encode(),
    }
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _publish(version: str, artifact: Callable[[str], bytes]) -> Release:
    existing = Release.objects.filter(version=version).first()
    if existing is not None:
        return existing
    return release_publish(version=version, fileobj=io.BytesIO(artifact(version)),
                           filename=f"{version}.tar.gz", notes="Demo release of make run", actor=Actor.demo())


def demo_rollout_seed(*, canary: str, hold_s: int = 45, canary_hold_s: int = 90,
                      artifact: Callable[[str], bytes] = demo_artifact) -> Rollout | None:
    """Put the demo channel on a demo release and start rolling a new one out, canary first.

    `artifact(version)` makes the release's bytes: `make run` passes the reference worker's build, so
    its demo workers, under the supervising agent, really run each demo release.
    """
    channel = Channel.objects.filter(name=DEMO_CHANNEL).select_related("current").first()
    if Rollout.objects.active().filter(channel__name=DEMO_CHANNEL).exists():
        return None
    try:
        if channel is None or channel.current is None:
            _publish(f"{DEMO_PREFIX}1.0.0", artifact)
            rollout_start(version=f"{DEMO_PREFIX}1.0.0", channel_name=DEMO_CHANNEL, steps=[{"percent": 100}],
                          actor=Actor.demo())
            rollout_promote(channel_name=DEMO_CHANNEL, actor=Actor.demo())
        version = f"{DEMO_PREFIX}{timezone.now():%Y%m%d.%H%M%S}"
        _publish(version, artifact)
        return rollout_start(
            version=version, channel_name=DEMO_CHANNEL, canary=[canary], actor=Actor.demo(),
            steps=[{"canary": [canary], "hold_s": canary_hold_s, "approve": True},
                   {"percent": 50, "hold_s": hold_s},
                   {"percent": 100, "hold_s": hold_s}],
            # Few demo jobs finish within a demo hold, and the simulated scrapes fail on purpose now and
            # then: judge installs, heartbeats and self-tests, not the demo's own error rate.
            gates={"min_attempts": 0, "max_error_rate": 0.5},
        )
    except ReleaseRefused:
        return None
