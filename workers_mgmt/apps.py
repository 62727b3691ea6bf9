from core import app_config


class WorkersMgmtConfig(app_config.ProjectAppConfig):
    name = "workers_mgmt"
    verbose_name = "Fleet"

    def connect(self) -> None:
        # Registers the OpenAPI description of the signing scheme with drf-spectacular.
        from workers_mgmt import schema  # noqa: F401
        from workers_mgmt.credential_cache import credential_cache_connect

        credential_cache_connect()
