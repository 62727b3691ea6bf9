from core import app_config


class AlertsConfig(app_config.ProjectAppConfig):
    name = "alerts"
    verbose_name = "Alerts"
