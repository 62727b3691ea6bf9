"""rollout_rollback --channel C [--reason R]: channel current = previous, manifest re-signed."""

from releases_app.management.commands._channel_command import ChannelCommand
from releases_app.services import channel_rollback


class Command(ChannelCommand):
    help = "Put the channel back on its previous release (stopping a rollout in progress)."
    takes_reason = True

    def act(self, *, channel, actor, reason):
        return channel_rollback(channel_name=channel, actor=actor, reason=reason)
