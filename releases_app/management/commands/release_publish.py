"""release_publish --version V --file F [--notes T] [--min-agent A] [--json]: upload and self-test."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from core.commands import write_answer
from releases_app.management.commands._common import ReleaseVersionCommand, command_actor, refused_as_error
from releases_app.models import ReleaseState
from releases_app.services import release_publish


class Command(ReleaseVersionCommand):
    help = "Upload a worker artifact (.tar.gz or .zip), self-test it and print its state."

    def add_release_arguments(self, parser):
        parser.add_argument("--file", required=True)
        parser.add_argument("--notes", default="")
        parser.add_argument("--min-agent", default="", dest="min_agent")

    def handle(self, *args, release_version: str, file: str, notes: str, min_agent: str, as_json: bool,
               **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        with path.open("rb") as handle:
            release = refused_as_error(lambda: release_publish(
                version=release_version, fileobj=handle, filename=path.name, notes=notes,
                min_agent_version=min_agent, actor=command_actor(self)))
        answer = {"version": release.version, "sha256": release.sha256, "size": release.size,
                  "state": release.state}
        write_answer(self, answer, as_json=as_json,
                     text=f"{release.version}: {release.state} ({release.size} bytes, "
                          f"sha256 {release.sha256})")
        if release.state != ReleaseState.READY:
            errors = "; ".join(release.self_test_report.get("errors", []))
            raise CommandError(f"self-test failed: {errors}")
