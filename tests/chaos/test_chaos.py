"""The chaos run: 20 reference worker processes against two live portal processes and a q cluster,
while workers die mid-job, answers get lost after the commit, reports come twice and late, a
server process is killed and restarted, one process loses its database connections, Redis
restarts and a live worker's key is rotated in an emergency from a shell. Whatever happened, the
books must balance at the end, and the old key was refused by every server from its revocation on
(docs/RELIABILITY.md).

`make test-chaos` (CHAOS_SEED=N replays a run); needs PostgreSQL and redis-server.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from django.db import connection

from ingestion.models import Lead
from queueing.models import Job, JobState
from queueing.services import jobs_enqueue
from tests.chaos.invariants import counter_problems, jobs_finished_once_problems
from tests.chaos.proxy import ChaosProxy, answered_leads
from tests.e2e.servers import BASE_DIR, LOG_DIR, free_port, server_kill, sessions_end, start_server
from tests.factories import make_provider, make_worker

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 20
V1_WORKERS = 5  # of the 20, these report over the v1 calls (the rest over exchange)
STRAGGLERS = 3
JOBS = 800
BAIT_JOBS = 8  # only the stragglers take these (see worker_proc.straggle)
LEASE_S = 5


@dataclass
class Rotation:
    """An emergency rotation made from a shell mid-run: the key it revoked, and a wall-clock time by
    which its transaction had committed (the command prints the new key only after the commit)."""

    worker_index: int
    worker_id: str
    old_key_id: str
    committed_by: float


@dataclass
class Fleet:
    """The processes of one run, each restartable."""

    seed: int
    env: dict[str, str]
    server_kind: str
    server_ports: list[int]
    redis_port: int
    proxy_url: str = ""
    servers: dict[int, subprocess.Popen] = field(default_factory=dict)
    workers: dict[int, subprocess.Popen] = field(default_factory=dict)
    worker_args: dict[int, list[str]] = field(default_factory=dict)
    others: list[subprocess.Popen] = field(default_factory=list)
    redis: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)
    proxy: ChaosProxy | None = None
    rotations: list[Rotation] = field(default_factory=list)

    def note(self, what: str) -> None:
        line = f"[chaos {time.strftime('%H:%M:%S')}] {what}"
        self.log.append(line)
        print(line, flush=True)

    def server_env(self, index: int) -> dict[str, str]:
        # application_name names this process's database sessions: the chaos run terminates them.
        return {**self.env, "DATABASE_URL": f"{self.env['DATABASE_URL']}?application_name=chaos-{index}"}

    def server_start(self, index: int) -> None:
        port = self.server_ports[index]
        self.servers[index] = start_server(self.server_kind, port, self.server_env(index),
                                           log_name=f"chaos-{self.seed}-server{index}")

    def redis_start(self) -> None:
        log = open(LOG_DIR / f"chaos-{self.seed}-redis.log", "ab")  # noqa: SIM115
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--daemonize", "no"],
                                      stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True)
            if ping.stdout.strip() == b"PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def worker_start(self, index: int) -> None:
        log = open(LOG_DIR / f"chaos-{self.seed}-worker{index}.out", "ab")  # noqa: SIM115
        self.workers[index] = subprocess.Popen(self.worker_args[index], cwd=BASE_DIR, stdout=log,
                                               stderr=subprocess.STDOUT)

    def stop_all(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                process.kill()
        for process in self.servers.values():
            server_kill(process)
        # The q cluster forks its own workers: end the whole session it leads.
        sessions_end(self.others, timeout=15)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()


def _database_url() -> str:
    settings = connection.settings_dict
    return (f"postgres://{settings.get('USER') or 'postgres'}@{settings.get('HOST') or '127.0.0.1'}:"
            f"{settings.get('PORT') or 5432}/{settings['NAME']}")


def _terminate_connections(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = %s AND pid <> pg_backend_pid()",
            [connection.settings_dict["NAME"], application_name],
        )
        return int(cursor.fetchone()[0])


def _chaos_plan(rng: random.Random) -> list[tuple[float, str]]:
    """When (share of jobs finished) each disturbance happens; the seed decides."""
    plan = [(rng.uniform(0.05, 0.85), "kill_worker") for _ in range(8)]
    plan += [(rng.uniform(0.15, 0.3), "kill_server"), (rng.uniform(0.35, 0.5), "terminate_db"),
             (rng.uniform(0.55, 0.7), "restart_redis"), (rng.uniform(0.7, 0.8), "terminate_db"),
             (rng.uniform(0.3, 0.65), "rotate_key")]
    return sorted(plan)


def _finished() -> int:
    return Job.objects.filter(state__in=[JobState.SUCCEEDED, JobState.DEAD]).count()


def _chaos_do(fleet: Fleet, action: str, rng: random.Random) -> None:
    if action == "kill_worker":
        index = rng.randrange(WORKERS)
        fleet.workers[index].kill()  # SIGKILL: no report, no release; its leases lapse
        fleet.workers[index].wait()
        time.sleep(rng.uniform(0.2, 1.5))
        fleet.worker_start(index)
        fleet.note(f"killed and restarted worker {index}")
    elif action == "kill_server":
        index = rng.randrange(len(fleet.server_ports))
        server_kill(fleet.servers[index])  # SIGKILL to it and what it forked
        fleet.note(f"killed server {index}")
        time.sleep(rng.uniform(1, 3))
        fleet.server_start(index)
        fleet.note(f"restarted server {index}")
    elif action == "terminate_db":
        index = rng.randrange(len(fleet.server_ports))
        count = _terminate_connections(f"chaos-{index}")
        fleet.note(f"terminated {count} database connections of server {index}")
    elif action == "rotate_key":
        _rotate_key(fleet, rng.randrange(WORKERS - STRAGGLERS))
    elif action == "restart_redis":
        assert fleet.redis is not None
        fleet.redis.terminate()
        fleet.redis.wait()
        fleet.note("redis stopped")
        time.sleep(rng.uniform(0.5, 2))
        fleet.redis_start()
        fleet.note("redis restarted")


def _arg(args: list[str], name: str) -> str:
    """The value of `name` in a worker's argv, given as `--name=value` or `--name value`."""
    for index, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[index + 1]
    raise KeyError(name)


def _rotate_key(fleet: Fleet, index: int) -> None:
    """An operator's emergency rotation of a live worker, from a shell (a third process).

    The worker goes on signing with its old key for a while (every such request must be refused, by
    either server), then is restarted with the new key, as an operator installs it.
    """
    assert fleet.proxy is not None
    args = fleet.worker_args[index]
    worker_id, old_key_id = _arg(args, "--worker-id"), _arg(args, "--key-id")
    command = subprocess.Popen(
        [sys.executable, "manage.py", "rotate_worker_secret", worker_id, "--emergency", "--json"], cwd=BASE_DIR,
        env={**fleet.server_env(8), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    assert command.stdout is not None
    line = command.stdout.readline()
    committed_by = time.time()
    rest, errors = command.communicate(timeout=120)
    assert command.returncode == 0, errors[-2000:]
    new = json.loads(line or rest)
    fleet.rotations.append(Rotation(index, worker_id, old_key_id, committed_by))
    fleet.note(f"emergency rotation of {worker_id} from a shell: {old_key_id} revoked")
    # Let the worker try its old key on both servers (or give up after 10 s), then give it the new one.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = [r for r in list(fleet.proxy.records) if r.key_id == old_key_id and r.sent_at > committed_by]
        if len({r.backend for r in after}) >= 2:
            break
        time.sleep(0.2)
    fleet.workers[index].kill()
    fleet.workers[index].wait()
    fleet.worker_args[index] = [arg for arg in args if not arg.startswith(("--key-id=", "--secret="))] + [
        f"--key-id={new['key_id']}", f"--secret={new['secret']}"]
    fleet.worker_start(index)
    fleet.note(f"restarted worker {index} with its new key")


def rotation_problems(fleet: Fleet, records: list) -> list[str]:
    """Against the credential audit: no request signed with a revoked key was accepted by any server
    once the revocation had committed, and the test did send such requests."""
    from workers_mgmt.models import CredentialEvent, CredentialEventKind

    problems = []
    refused_statuses = {401, 429, 502, 503, 0}  # 429: the failure budget; 0/502/503: a server or backend down
    for rotation in fleet.rotations:
        revoked = CredentialEvent.objects.filter(key_id=rotation.old_key_id, kind=CredentialEventKind.REVOKED,
                                                 reason="emergency").first()
        if revoked is None or revoked.created_at.timestamp() > rotation.committed_by:
            problems.append(f"no emergency revocation of {rotation.old_key_id} in the credential audit before "
                            f"the command answered: {revoked}")
            continue
        after = [r for r in records if r.key_id == rotation.old_key_id and r.sent_at > rotation.committed_by]
        accepted = [r for r in after if r.status not in refused_statuses]
        problems += [f"a request signed with revoked key {rotation.old_key_id} was accepted by the server on "
                     f":{r.backend} after the revocation committed: {r.method} {r.path} -> {r.status}"
                     for r in accepted]
        by_server = Counter(r.backend for r in after)
        fleet.note(f"{rotation.worker_id}: {len(after)} requests with the revoked key after the commit, "
                   f"{len(accepted)} accepted (per server port: {dict(by_server)})")
        if not after:
            problems.append(f"{rotation.worker_id} sent no request with its revoked key: nothing was tested")
    return problems


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_the_books_balance_after_chaos(chaos_seed, tmp_path):
    started = time.monotonic()
    rng = random.Random(chaos_seed)
    LOG_DIR.mkdir(exist_ok=True)
    redis_port = free_port()
    fleet = Fleet(
        seed=chaos_seed, server_kind=os.environ.get("LEADOPS_CHAOS_SERVER", "daphne"),
        server_ports=[free_port(), free_port()], redis_port=redis_port,
        env={**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
             "DJANGO_SETTINGS_MODULE": "leadops.settings", "LEADOPS_REDIS_PREFIX": f"chaos-{chaos_seed}",
             "LEADOPS_REAP_ON_PULL_S": "1", "LEADOPS_DB_POOL_MAX": "8",
             # Every worker reaches the servers through the proxy, from one address: the failed-
             # authentication budget per source IP would let the rotated worker's refused requests
             # throttle the whole fleet, which no real fleet (one address per machine) shares.
             "LEADOPS_AUTH_FAILURES_IP_PER_MIN": "1000000", "LEADOPS_AUTH_FAILURES_IP_BURST": "100000"},
    )
    provider = make_provider("chaos", lease_seconds=LEASE_S, max_attempts=3, backoff_base_s=1, backoff_cap_s=2,
                             breaker_failure_pct=100, breaker_min_outcomes=10_000)
    jobs_enqueue(provider=provider, payloads=[{"seq": seq} for seq in range(JOBS)])
    bait = make_provider("bait", lease_seconds=LEASE_S, max_attempts=3, backoff_base_s=1, backoff_cap_s=1,
                         breaker_failure_pct=100, breaker_min_outcomes=10_000)
    jobs_enqueue(provider=bait, payloads=[{"seq": JOBS + seq} for seq in range(BAIT_JOBS)])
    all_jobs = JOBS + BAIT_JOBS
    proxy = None
    try:
        fleet.redis_start()
        for index in range(len(fleet.server_ports)):
            fleet.server_start(index)
        q_log = open(LOG_DIR / f"chaos-{chaos_seed}-qcluster.log", "ab")  # noqa: SIM115
        fleet.others.append(subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR,
                                             env=fleet.server_env(9), stdout=q_log, stderr=subprocess.STDOUT,
                                             start_new_session=True))
        proxy = ChaosProxy(fleet.server_ports, seed=chaos_seed, drop_share=0.05).start()
        fleet.proxy = proxy
        url = f"http://127.0.0.1:{proxy.port}"
        for index in range(WORKERS):
            _, issued = make_worker(worker_id=f"chaos-{index}", rate_limit_per_min=100_000)
            args = [sys.executable, "-m", "tests.chaos.worker_proc", "--url", url, "--worker-id", issued.worker_id,
                    f"--key-id={issued.key_id}", f"--secret={issued.secret}", "--seed", str(chaos_seed * 100 + index),
                    "--log", str(tmp_path / f"worker{index}.jsonl"), "--provider", "chaos"]
            if index < V1_WORKERS:
                args.append("--v1")
            if index >= WORKERS - STRAGGLERS:
                # The first straggler holds bait jobs past their lease; the others take them over.
                hold_s = LEASE_S * 2 if index == WORKERS - STRAGGLERS else 0
                args += ["--bait-provider", "bait", "--straggle-after", str(hold_s)]
            fleet.worker_args[index] = args
            fleet.worker_start(index)
        fleet.note(f"{WORKERS} workers, {JOBS} jobs, 2 {fleet.server_kind} servers, q cluster, proxy :{proxy.port}")

        plan = _chaos_plan(rng)
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:
            finished = _finished()
            while plan and finished >= plan[0][0] * all_jobs:
                _chaos_do(fleet, plan.pop(0)[1], rng)
            if finished == all_jobs and not plan:
                break
            time.sleep(0.5)
        fleet.note(f"{_finished()} of {all_jobs} jobs finished; chaos left undone: {plan}")
        for process in fleet.workers.values():
            process.send_signal(signal.SIGTERM)
        for process in fleet.workers.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        fleet.note(f"workers stopped; {proxy.dropped} answers dropped of {len(proxy.records)} requests")
    finally:
        fleet.stop_all()
        if proxy is not None:
            proxy.stop()

    problems = jobs_finished_once_problems() + counter_problems() + rotation_problems(fleet, proxy.records)
    certain, uncertain = answered_leads(proxy.records)
    stored = set(Lead.objects.filter(phone_e164__isnull=False).values_list("phone_e164", flat=True))
    if certain - stored:
        problems.append(f"{len(certain - stored)} phones answered 200 but not stored: {sorted(certain - stored)[:5]}")
    if stored - certain - uncertain:
        extra = sorted(stored - certain - uncertain)
        problems.append(f"{len(extra)} phones stored that no 200 answer covers: {extra[:5]}")
    server_errors = Counter(record.path for record in proxy.records if record.status == 500)
    if server_errors:
        problems.append(f"500 answers (a backend outage must answer 503): {dict(server_errors)}")
    events = [{**json.loads(line), "log": path.stem} for path in tmp_path.glob("worker*.jsonl")
              for line in path.read_text().splitlines()]
    workers_started = {path.name for path in tmp_path.glob("worker*.jsonl") if '"started"' in path.read_text()}
    if len(workers_started) != WORKERS:
        problems.append(f"only {len(workers_started)} of {WORKERS} worker processes ever started; see test-artifacts/")
    # A rotated worker's duplicates sent with its revoked key are refused (401), as they must be.
    revoked_from = {f"worker{r.worker_index}": r.committed_by for r in fleet.rotations}
    duplicates = [e for e in events if e["kind"] == "duplicate"
                  and not (e["status"] == 401 and e["at"] >= revoked_from.get(e["log"], float("inf")))]
    late = [e for e in events if e["kind"] == "late"]
    problems += [f"a duplicate report was not answered with the first answer: {e}"
                 for e in duplicates if e["status"] != 200 or not e.get("same")]
    problems += [f"a late report got neither 200 nor 409: {e}" for e in late if e["status"] not in (200, 409)]
    fleet.note(f"duplicates sent {len(duplicates)}, late reports {len(late)} "
               f"({sum(e['status'] == 409 for e in late)} refused as superseded), "
               f"{len(stored)} leads stored, {len(uncertain & stored)} of them from answers lost in a crash")
    fleet.note(f"seed {chaos_seed}: {time.monotonic() - started:.0f} s")
    assert not problems, f"chaos seed {chaos_seed}:\n" + "\n".join(problems)
    assert duplicates and any(e["status"] == 409 for e in late), \
        "the run sent no duplicate, or no late report of a superseded attempt: nothing was tested there"
