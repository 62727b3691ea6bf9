from django.apps import AppConfig


class WorkersMgmtConfig(AppConfig):
    name = "workers_mgmt"
    verbose_name = "Fleet"

    def ready(self) -> None:
        # Registers the OpenAPI description of the signing scheme with drf-spectacular.
        from workers_mgmt import checks, schema  # noqa: F401
        from workers_mgmt.credential_cache import credential_cache_connect

        credential_cache_connect()
        checks.register()
