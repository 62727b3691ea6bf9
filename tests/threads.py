"""Real threads for the PostgreSQL concurrency tests, each on its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection


def run_in_threads(target: Callable[..., Any], arguments: Iterable[tuple[Any, ...]], *,
                   timeout: float | None = 300) -> None:
    """Call `target(*args)` in one thread per entry of `arguments`, wait for them all, and fail with
    whatever they raised. Each thread closes its own connection when it is done."""
    errors: list[BaseException] = []

    def run(*args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not errors, errors
