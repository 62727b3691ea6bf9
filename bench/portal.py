"""The portal under test: a fresh database, migrations, workers and jobs through the management
commands of docs/RUNBOOK.md, "Management commands", and server processes (daphne, gunicorn, uvicorn,
granian: `leadops/servers.py`) in production mode (DEBUG=False)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import ROOT, database_url, dsn, recreate_database
from leadops.servers import server_command

DB = os.environ.get("BENCH_DB_PREFIX", "leadops_bench") + ""
PYTHON = sys.executable


def bench_env(*, redis: bool, pool: bool = True, log_dir: Path) -> dict[str, str]:
    """Production settings with keys made for this run only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADOPS_", "DJANGO_"))}
    for name in ("DEBUG", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS"):
        env.pop(name, None)
    env.update({
        "DEBUG": "False",
        "DJANGO_SETTINGS_MODULE": "leadops.settings",
        "DATABASE_URL": database_url(DB),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LEADOPS_SECRETS_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "LEADOPS_FINGERPRINT_KEY": secrets.token_urlsafe(48),
        "LEADOPS_SIGNING_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "SECURE_SSL_REDIRECT": "False",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "LEADOPS_DB_POOL": "True" if pool else "False",
        "LEADOPS_STORAGE_DIR": str(log_dir / "storage"),
        "STATIC_ROOT": str(log_dir / "static"),
        "PYTHONUNBUFFERED": "1",
    })
    if redis:
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        # Nonces and rate-limit state of this run live under their own prefix and expire on their own.
        env["LEADOPS_REDIS_PREFIX"] = f"leadops-bench-{secrets.token_hex(4)}"
    return env


def redis_reachable(url: str = "redis://127.0.0.1:6379/0") -> bool:
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def fresh_portal(database: str, *, redis: bool) -> tuple[dict[str, str], Path]:
    """Production settings on `database`, made anew and migrated: (the environment, the run's log folder)."""
    log_dir = new_log_dir()
    env = bench_env(redis=redis, log_dir=log_dir)
    env["DATABASE_URL"] = database_url(database)
    recreate_database(database)
    manage(env, "migrate", "--noinput", "-v", "0", timeout=600)
    return env, log_dir


def setup_database(env: dict[str, str]) -> None:
    recreate_database(DB)
    manage(env, "migrate", "--noinput", timeout=600)


def create_workers(env: dict[str, str], count: int, prefix: str = "bench-w") -> list[dict[str, str]]:
    """`create_worker ID --rate-limit 1000000 --json` for each worker, in one Python process."""
    code = (
        "import io, json, sys, django\n"
        "django.setup()\n"
        "from django.core.management import call_command\n"
        f"for i in range({count}):\n"
        "    out = io.StringIO()\n"
        f"    call_command('create_worker', f'{prefix}{{i:02d}}', '--rate-limit', '1000000', '--json', stdout=out)\n"
        "    print(out.getvalue().strip())\n"
    )
    proc = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"create_worker failed:\n{proc.stderr[-4000:]}")
    creds = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if len(creds) != count or not all({"worker_id", "key_id", "secret"} <= set(c) for c in creds):
        raise RuntimeError(f"create_worker printed unexpected output: {proc.stdout[-1000:]}")
    return creds


def enqueue(env: dict[str, str], count: int, provider: str = "bench") -> None:
    payload = json.dumps({"query": "مطاعم", "city": "Riyadh"}, ensure_ascii=False)
    manage(env, "enqueue_jobs", "--provider", provider, "--count", str(count), "--payload", payload)


def queued_jobs() -> int:
    with psycopg.connect(dsn(DB)) as conn:
        return conn.execute("SELECT count(*) FROM queueing_job WHERE state = 'queued'").fetchone()[0]


def top_up(env: dict[str, str], wanted: int) -> int:
    """Make sure at least `wanted` jobs are ready; return how many were added."""
    missing = wanted - queued_jobs()
    if missing > 0:
        enqueue(env, missing)
        with psycopg.connect(dsn(DB), autocommit=True) as conn:
            conn.execute("ANALYZE queueing_job")
        return missing
    return 0


def clone_ready_jobs(count: int, *, database: str = DB) -> None:
    """`count` more ready jobs in one `INSERT ... SELECT generate_series`: copies of a job that
    `enqueue_jobs` made (provider, payload, limits as the portal writes them), fresh and queued.
    For the million-job rows and the fleet's steady supply."""
    with psycopg.connect(dsn(database), autocommit=True) as conn:
        conn.execute(ready_jobs_sql(conn), [count])
        conn.execute("ANALYZE queueing_job")


def ready_jobs_sql(conn: psycopg.Connection) -> str:
    """The INSERT of `clone_ready_jobs` (one parameter: how many), returning the new ids."""
    columns = [row[0] for row in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'queueing_job' "
        "AND column_name <> 'id' ORDER BY ordinal_position").fetchall()]
    template = conn.execute("SELECT min(id) FROM queueing_job").fetchone()[0]
    if template is None:
        raise RuntimeError("clone_ready_jobs needs one job to copy (enqueue_jobs first)")
    names = ", ".join(f'"{c}"' for c in columns)
    fresh = {"created_at": "now()", "updated_at": "now()", "run_at": "now()", "state": "'queued'",
             "attempts": "0", "current_attempt_id": "NULL", "leased_by_id": "NULL", "lease_expires_at": "NULL",
             "finished_at": "NULL", "last_error": "NULL", "leads_added": "0", "dead_reason": "''"}
    picks = ", ".join(fresh.get(c, f't."{c}"') for c in columns)
    return (f"INSERT INTO queueing_job ({names}) SELECT {picks} FROM queueing_job t, "
            f"generate_series(1, %s) WHERE t.id = {int(template)} RETURNING id")


def db_stats() -> dict[str, int]:
    with psycopg.connect(dsn(DB)) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched, "
            "tup_returned FROM pg_stat_database WHERE datname = %s", [DB]).fetchone()
    names = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched",
             "tup_returned")
    return dict(zip(names, row, strict=True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a server's master and its worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


class Server:
    """One server command (leadops.servers.server_command) serving the portal on 127.0.0.1.

    `processes` > 1 means the server's own worker processes behind one port (gunicorn, uvicorn,
    granian); daphne has none, so the bench starts several `Server`s for it, one port each.
    """

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None, *, kind: str = "daphne",
                 processes: int = 1) -> None:
        self.kind = kind
        self.processes = processes
        self.port = port or free_port()
        self.log_path = log_dir / f"{kind}-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open for the life of the process
        self.proc = subprocess.Popen(
            server_command(kind, port=self.port, processes=processes, python=PYTHON),
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        """The processes whose CPU is the server's: the command and every process it started."""
        return process_tree(self.proc.pid)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited ({self.proc.returncode}); log:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"GET /api/v1/config HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    # Every worker process must have started, not only the first to answer.
                    if sock.recv(64).startswith(b"HTTP/1.1") and (self.processes == 1
                                                                    or len(self.pids()) > self.processes):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.kind} on port {self.port} not ready after {timeout:.0f}s; log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


Daphne = Server


def new_log_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="leadops-bench-"))
