"""The test suite's settings: the project's own, in development mode.

`DEBUG` defaults to off (a production deploy that forgets it must not run in debug mode with
generated keys), so the suite turns development mode on here, before the settings are read. The
environment keeps it, so the servers the suite starts (daphne, `manage.py`) run in it too; a test
that passes `DEBUG=False` to a subprocess still gets production settings.
"""

import os

os.environ.setdefault("DEBUG", "true")

from leadops.settings import *  # noqa: F403
