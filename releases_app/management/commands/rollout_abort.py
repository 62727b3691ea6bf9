"""rollout_abort --channel C [--reason R]: stop the rollout; every worker goes back to the old release."""

from releases_app.management.commands._channel_command import ChannelCommand
from releases_app.services import rollout_abort


class Command(ChannelCommand):
    help = "Abort the channel's rollout and put the channel back on the release it had before."
    takes_reason = True

    def act(self, *, channel, actor, reason):
        return rollout_abort(channel_name=channel, actor=actor, reason=reason)
