#!/usr/bin/env python
"""Django's command-line utility for LeadOps."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadops.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - load the settings now, to report a refusal in one line
    except ImproperlyConfigured as exc:
        sys.exit(f"manage.py: {exc}")

    if sys.argv[1:] == ["version"]:
        # Django answers `version` with its own version before it looks for a command: LeadOps's
        # `version` command (leadops/management/commands/version.py) is run by name instead.
        import django
        from django.core.management import call_command

        django.setup()
        call_command("version")
        return
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
