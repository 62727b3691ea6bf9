"""rollout_promote --channel C: promote now, to the next step (or finish), skipping hold and gates."""

from releases_app.management.commands._channel_command import ChannelCommand
from releases_app.services import rollout_promote


class Command(ChannelCommand):
    help = "Move the channel's rollout to its next step now (approves a step waiting for approval)."

    def act(self, *, channel, actor, reason):
        return rollout_promote(channel_name=channel, actor=actor)
