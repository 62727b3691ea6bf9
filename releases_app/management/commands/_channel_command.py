"""The shape of the one-channel rollout commands: --channel C [--reason R] [--json]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand

from core.audit import Actor
from core.commands import add_json_option, write_answer
from releases_app.management.commands._common import command_actor, refused_as_error
from releases_app.models import Channel, Rollout


class ChannelCommand(BaseCommand):
    takes_reason = False

    def add_arguments(self, parser):
        parser.add_argument("--channel", required=True)
        if self.takes_reason:
            parser.add_argument("--reason", default="")
        add_json_option(parser)

    def act(self, *, channel: str, actor: Actor, reason: str) -> Any:
        raise NotImplementedError

    def handle(self, *args, channel: str, as_json: bool, reason: str = "", **options):
        run: Callable[[], Any] = lambda: self.act(channel=channel, actor=command_actor(self), reason=reason)  # noqa: E731
        result = refused_as_error(run)
        state = Channel.objects.select_related("current", "previous").get(name=channel)
        answer: dict[str, Any] = {
            "channel": channel, "sequence": state.sequence,
            "current": state.current.version if state.current else None,
            "previous": state.previous.version if state.previous else None,
        }
        if isinstance(result, Rollout):
            answer.update(rollout_id=result.pk, state=result.state, step=result.step_index)
        write_answer(self, answer, as_json=as_json,
                     text=" ".join(f"{key}={value}" for key, value in answer.items()))
