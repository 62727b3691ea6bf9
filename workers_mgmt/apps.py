from django.apps import AppConfig


class WorkersMgmtConfig(AppConfig):
    name = "workers_mgmt"
    verbose_name = "Fleet"
