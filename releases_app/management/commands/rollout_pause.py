"""rollout_pause --channel C [--reason R]: hold the rollout where it is (no step moves)."""

from releases_app.management.commands._channel_command import ChannelCommand
from releases_app.services import rollout_pause


class Command(ChannelCommand):
    help = "Pause the channel's rollout: reached workers keep the release, no step moves."
    takes_reason = True

    def act(self, *, channel, actor, reason):
        return rollout_pause(channel_name=channel, actor=actor, reason=reason)
