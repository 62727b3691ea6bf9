"""Text choices whose labels are written only where they say more than the member's name.

A member written without a label (`ROLLED_BACK = "rolled_back"`) is labelled with its name in
sentence case ("Rolled back"), the way this project labels its choices; Django's own default would be
title case ("Rolled Back"). See docs/CONTRIBUTING.md,
"Layers, types and where a change goes".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models.enums import ChoicesType


class _SentenceCaseLabels(ChoicesType):
    def __new__(metacls, classname: str, bases: tuple[type, ...], classdict: Any, **kwds: Any) -> Any:
        unlabelled = [key for key in classdict._member_names if not isinstance(classdict[key], (list, tuple))]
        cls = super().__new__(metacls, classname, bases, classdict, **kwds)
        for key in unlabelled:
            cls[key]._label_ = key.replace("_", " ").capitalize()
        return cls


if TYPE_CHECKING:
    # The Django plugin of mypy knows only Django's own metaclass; the labels are strings either way.
    TextChoices = models.TextChoices
else:
    class TextChoices(models.TextChoices, metaclass=_SentenceCaseLabels):
        """`models.TextChoices` with sentence-case default labels: write `DONE = "done"`, not
        `DONE = "done", "Done"`; give a label only where it differs from the name in sentence case."""
