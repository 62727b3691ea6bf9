"""Helpers for the apps' system checks of their settings (each app's `checks.py`, docs/DEPLOY.md,
"Settings checks")."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core import checks

CheckFunction = Callable[..., list[checks.CheckMessage]]


def settings_check(check_id: str, level: type[checks.Error | checks.Warning], *, hint: str
                   ) -> Callable[[Callable[..., str | None]], CheckFunction]:
    """Turn a function that names the settings' problem (None when there is none) into a system check.

    The id, level and hint stand above the function; the function says only what is wrong. It gets the
    check's keyword arguments (`databases`, ...) as Django passes them.
    """
    def decorate(problem: Callable[..., str | None]) -> CheckFunction:
        @functools.wraps(problem)
        def check(**kwargs: Any) -> list[checks.CheckMessage]:
            message = problem(**kwargs)
            return [] if message is None else [level(message, hint=hint, obj="settings", id=check_id)]
        return check
    return decorate


def below_minimum(*, minimums: Mapping[str, float], check_id: str, hint: str,
                  obj: str = "settings") -> list[checks.CheckMessage]:
    """One Error per setting of `minimums` whose value is below its minimum (or not a number)."""
    errors: list[checks.CheckMessage] = []
    for name, minimum in minimums.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            errors.append(checks.Error(
                f"{name} is {value!r}; it must be a number of at least {minimum:g}.",
                hint=f"Set {name} to {minimum:g} or more in the environment. {hint}", obj=obj, id=check_id))
    return errors


# Mail backends that keep every message on this machine: printed, held in memory, written to files or
# dropped. Fine for development; in production an email alert would reach nobody.
NON_SENDING_EMAIL_BACKENDS = frozenset({
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
})


def email_backend_sends() -> bool:
    """Whether EMAIL_BACKEND hands mail to a server at all."""
    return settings.EMAIL_BACKEND not in NON_SENDING_EMAIL_BACKENDS
