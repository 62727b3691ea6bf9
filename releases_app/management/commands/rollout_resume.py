"""rollout_resume --channel C: a paused rollout runs again; its step's hold starts over."""

from releases_app.management.commands._channel_command import ChannelCommand
from releases_app.services import rollout_resume


class Command(ChannelCommand):
    help = "Resume the channel's paused rollout."

    def act(self, *, channel, actor, reason):
        return rollout_resume(channel_name=channel, actor=actor)
