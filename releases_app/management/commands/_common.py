"""What the release commands share: who acts, and how a refusal becomes a one-line error."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from django.core.management.base import CommandError

from releases_app.services import ReleaseRefused

T = TypeVar("T")


def command_actor() -> str:
    """The audit trail's actor for a command: the operating system user who ran it."""
    return f"cli:{os.environ.get('USER') or 'operator'}"[:150]


class VersionOptionMixin:
    """Gives `--version` to the command (DESIGN contract) instead of Django's "print Django's version"."""

    def add_base_argument(self, parser, *args, **kwargs):
        if "--version" in args:
            return
        super().add_base_argument(parser, *args, **kwargs)  # type: ignore[misc]


def refused_as_error(call: Callable[[], T]) -> T:
    try:
        return call()
    except ReleaseRefused as exc:
        raise CommandError(str(exc)) from None
