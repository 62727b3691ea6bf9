"""rollout_start --version V --channel C [--canary W1,W2] [--steps JSON]: start a staged rollout."""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from core.commands import write_answer
from releases_app.management.commands._common import ReleaseVersionCommand, command_actor, refused_as_error
from releases_app.services import rollout_start


class Command(ReleaseVersionCommand):
    help = "Start rolling a ready release out on a channel: canaries first, then step by step."

    def add_release_arguments(self, parser):
        parser.add_argument("--channel", required=True)
        parser.add_argument("--canary", default="", help="Comma-separated worker ids that go first.")
        parser.add_argument("--steps", default=None,
                            help='JSON list, e.g. [{"canary":["w1"],"hold_s":1800,"approve":true},'
                                 '{"percent":50,"hold_s":1800},{"percent":100}]')

    def handle(self, *args, release_version: str, channel: str, canary: str, steps: str | None,
               as_json: bool, **options):
        canaries = [name.strip() for name in canary.split(",") if name.strip()]
        parsed = None
        if steps is not None:
            try:
                parsed = json.loads(steps)
            except ValueError:
                raise CommandError("--steps is not valid JSON") from None
        rollout = refused_as_error(lambda: rollout_start(
            version=release_version, channel_name=channel, canary=canaries, steps=parsed,
            actor=command_actor(self)))
        answer = {"rollout_id": rollout.pk, "channel": channel, "version": release_version,
                  "state": rollout.state, "step": rollout.step_index, "steps": rollout.steps,
                  "targets": rollout.targets.count()}
        write_answer(self, answer, as_json=as_json,
                     text=f"rollout {rollout.pk}: {release_version} on {channel}, step 0 of "
                          f"{len(rollout.steps)}, {answer['targets']} workers reached")
