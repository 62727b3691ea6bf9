from django.apps import AppConfig


class ReleasesAppConfig(AppConfig):
    name = "releases_app"
    verbose_name = "Releases"
