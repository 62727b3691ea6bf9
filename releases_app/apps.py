from core import app_config


class ReleasesAppConfig(app_config.ProjectAppConfig):
    name = "releases_app"
    verbose_name = "Releases"

    def connect(self) -> None:
        from releases_app.selectors import (
            update_target_decode,
            update_target_now,
            update_target_of,
            update_target_subquery,
        )
        from workers_mgmt.api import UpdateTargetRead, register_update_target_lookup

        # The heartbeat answers each worker's update target, which this app decides
        # (docs/API.md, "POST /heartbeat"); workers_mgmt may not import releases_app. The heartbeat
        # reads it inside its own UPDATE (docs/PERFORMANCE.md, "The heartbeat, round two").
        register_update_target_lookup(update_target_of, read=UpdateTargetRead(
            subquery=update_target_subquery, now=update_target_now, decode=update_target_decode))
