from core import app_config


class ReleasesAppConfig(app_config.ProjectAppConfig):
    name = "releases_app"
    verbose_name = "Releases"

    def connect(self) -> None:
        from releases_app.selectors import update_target_of
        from workers_mgmt.api import register_update_target_lookup

        # The heartbeat answers each worker's update target, which this app decides
        # (docs/API.md, "POST /heartbeat"); workers_mgmt may not import releases_app.
        register_update_target_lookup(update_target_of)
