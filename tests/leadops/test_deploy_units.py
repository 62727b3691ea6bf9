"""The production layout in deploy/ names things that exist: every command of the Procfile and the
systemd units resolves (module, management command, app object) and parses with the server's own
option parser, and the nginx config sends every WebSocket route and every async view to daphne."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import shlex
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from django.urls import URLPattern, URLResolver, get_resolver

from leadops.routing import websocket_urlpatterns
from leadops.servers import ASYNC, CHOSEN, server_command

BASE_DIR = Path(__file__).resolve().parents[2]
DEPLOY = BASE_DIR / "deploy"


def procfile_commands() -> dict[str, list[str]]:
    commands = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[f"Procfile {name.strip()}"] = shlex.split(command)
    return commands


def unit_commands() -> dict[str, list[str]]:
    commands = {}
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        starts = [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
        assert len(starts) == 1, f"{unit.name}: one ExecStart expected"
        commands[unit.name] = shlex.split(starts[0])
    return commands


ALL_COMMANDS = {**procfile_commands(), **unit_commands()}


def _module_of(argv: list[str]) -> tuple[str, list[str]]:
    """(the module a `python -m module ...` or `python manage.py ...` command runs, its arguments)."""
    assert Path(argv[0]).name == "python", f"run through the project's python: {argv}"
    if argv[1] == "-m":
        return argv[2], argv[3:]
    assert argv[1] == "manage.py", argv
    return "manage.py", argv[2:]


def _app_object_exists(target: str) -> bool:
    module, _, name = target.partition(":")
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} does not resolve"
    tree = ast.parse(Path(spec.origin).read_text())
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)
               for node in tree.body)


def test_the_layout_has_every_process_the_portal_needs():
    names = {Path(argv[-1]).name if argv[1] == "manage.py" else argv[2] for argv in ALL_COMMANDS.values()}
    for needed in ("gunicorn", "daphne", "qcluster", "alerts_evaluate"):
        assert needed in names, f"no process runs {needed}"
    assert set(procfile_commands()) == {"Procfile web", "Procfile async", "Procfile qcluster", "Procfile alerts"}
    assert {"leadops-web.service", "leadops-async.service", "leadops-qcluster.service",
            "leadops-alerts.service"} <= set(unit_commands())


@pytest.mark.parametrize("where", sorted(ALL_COMMANDS))
def test_each_command_resolves_and_parses(where):
    module, args = _module_of(ALL_COMMANDS[where])
    if module == "manage.py":
        name, options = args[0], args[1:]
        commands = get_commands()
        assert name in commands, f"{where}: manage.py has no command {name!r}"
        load_command_class(commands[name], name).create_parser("manage.py", name).parse_args(options)
        return
    assert importlib.util.find_spec(module) is not None, f"{where}: module {module} is not installed"
    if module == "gunicorn":
        from gunicorn.config import Config

        parsed = Config().parser().parse_args(args)
        assert _app_object_exists(parsed.args[0])
        assert parsed.worker_class == CHOSEN.removeprefix("gunicorn-"), "the web server is the chosen one"
    elif module == "daphne":
        from daphne.cli import CommandLineInterface

        parsed = CommandLineInterface().parser.parse_args(args)
        assert _app_object_exists(parsed.application)
        assert parsed.proxy_headers, "daphne behind the proxy needs --proxy-headers for the client address"
    else:
        pytest.fail(f"{where}: no check for module {module}")


def test_the_bench_and_tests_run_the_same_servers_as_production():
    """The Procfile's web line is `server_command(CHOSEN)` for a 2-core node; the unit differs only in
    binding a unix socket."""
    bench = server_command(CHOSEN, port=8000, processes=2)
    web = procfile_commands()["Procfile web"]
    assert web[1:] == bench[1:]
    unit = unit_commands()["leadops-web.service"]
    bind = unit.index("--bind")
    assert unit[bind + 1].startswith("unix:")
    assert unit[1:bind + 1] + unit[bind + 2:] == bench[1:bench.index("--bind") + 1] + bench[bench.index("--bind") + 2:]
    assert procfile_commands()["Procfile async"][1:3] == server_command(ASYNC, port=8100)[1:3] == ["-m", "daphne"]


def _async_view_paths() -> list[str]:
    """Routes whose view is a coroutine function (they need the ASGI server)."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern) and inspect.iscoroutinefunction(entry.callback):
                found.append("/" + prefix + str(entry.pattern))

    walk(get_resolver().url_patterns, "")
    return found


def test_nginx_sends_websockets_and_async_views_to_daphne_and_the_rest_to_the_web_server():
    conf = (DEPLOY / "nginx" / "leadops.conf").read_text()
    locations = dict(re.findall(r"location\s+(?:=\s+)?(\S+)\s*\{[^}]*?proxy_pass\s+http://(\w+);", conf))
    assert locations["/"] == "leadops_web"
    assert "web.sock" in conf and "async.sock" in conf
    assert locations["/ws/"] == "leadops_async"
    for pattern in websocket_urlpatterns:
        assert str(pattern.pattern).lstrip("^").startswith("ws/"), pattern
    async_paths = _async_view_paths()
    assert "/api/v1/monitor/events" in async_paths
    for path in async_paths:
        assert locations.get(path) == "leadops_async", f"async view {path} must be routed to daphne"
