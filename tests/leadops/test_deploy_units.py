"""The production layout in deploy/ names things that exist: every command of the Procfile and the
systemd units resolves (module, management command, app object) and parses with the server's own
option parser, the web command is the one the bench measured and the end-to-end tests run
(`leadops.servers`), and the nginx config sends every WebSocket route and every async view to it."""

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
from leadops.servers import ASGI_KINDS, ASYNC, CHOSEN, server_command

BASE_DIR = Path(__file__).resolve().parents[2]
DEPLOY = BASE_DIR / "deploy"
# What a Procfile runner and systemd put in place of their variables.
SUBSTITUTIONS = {"$PORT": "8000", "%i": "1"}


def _split(command: str) -> list[str]:
    for variable, value in SUBSTITUTIONS.items():
        command = command.replace(variable, value)
    return shlex.split(command)


def procfile_commands() -> dict[str, list[str]]:
    commands = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[f"Procfile {name.strip()}"] = _split(command)
    return commands


def unit_commands() -> dict[str, list[str]]:
    commands = {}
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        starts = [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
        assert len(starts) == 1, f"{unit.name}: one ExecStart expected"
        commands[unit.name] = _split(starts[0])
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


def _without(argv: list[str], *options: str) -> list[str]:
    """argv without the given options and their values."""
    out, skip = [], False
    for part in argv:
        if skip:
            skip = False
        elif part in options:
            skip = True
        else:
            out.append(part)
    return out


def test_the_layout_has_every_process_the_portal_needs():
    def runs(argv: list[str]) -> str:
        return argv[2]

    procfile = {name.split()[1]: runs(argv) for name, argv in procfile_commands().items()}
    assert procfile == {"web": "daphne", "qcluster": "qcluster", "alerts": "alerts_evaluate"}
    units = {name: runs(argv) for name, argv in unit_commands().items()}
    assert units == {"leadops-web@.service": "daphne", "leadops-qcluster.service": "qcluster",
                     "leadops-alerts.service": "alerts_evaluate"}
    target = (DEPLOY / "systemd" / "leadops.target").read_text()
    for unit in ("leadops-web@1.service", "leadops-web@2.service", "leadops-qcluster.service",
                 "leadops-alerts.service"):
        assert unit in target


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
    assert module == "daphne", f"{where}: no check for module {module}"
    from daphne.cli import CommandLineInterface

    parsed = CommandLineInterface().parser.parse_args(args)
    assert _app_object_exists(parsed.application)
    assert parsed.proxy_headers, "daphne behind the proxy needs --proxy-headers for the client address"


def test_production_runs_the_server_the_bench_chose_with_the_same_command_line():
    assert CHOSEN in ASGI_KINDS, "the chosen server must also serve WebSockets, or deploy/ needs a second server"
    measured = server_command(CHOSEN, port=8000, proxy_headers=True)
    assert procfile_commands()["Procfile web"][1:] == measured[1:]
    unit = unit_commands()["leadops-web@.service"]
    assert unit[unit.index("-u") + 1] == "/run/leadops/web-1.sock"
    assert _without(unit, "-u")[1:] == _without(measured, "-b", "-p")[1:]
    assert ASYNC == CHOSEN


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


def test_nginx_sends_everything_to_the_daphne_sockets_websockets_and_streams_unbuffered():
    conf = (DEPLOY / "nginx" / "leadops.conf").read_text()
    upstreams = dict(re.findall(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf))
    sockets = set(re.findall(r"unix:(\S+?);", upstreams["leadops"]))
    assert sockets == {"/run/leadops/web-1.sock", "/run/leadops/web-2.sock"}, "one socket per leadops-web@N"
    blocks = dict(re.findall(r"location\s+(?:=\s+)?(\S+)\s*\{([^}]*)\}", conf))
    for path in ("/", "/ws/"):
        assert "proxy_pass http://leadops;" in blocks[path]
    assert "Upgrade $http_upgrade" in blocks["/ws/"]
    for pattern in websocket_urlpatterns:
        assert str(pattern.pattern).lstrip("^").startswith("ws/"), pattern
    async_paths = _async_view_paths()
    assert "/api/v1/monitor/events" in async_paths
    for path in async_paths:
        assert path in blocks and "proxy_buffering off;" in blocks[path], f"stream {path} needs its own location"
