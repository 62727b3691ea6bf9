"""What the credential generation check costs a signed request (docs/PERFORMANCE.md, "The credential
generation check").

    .venv/bin/python -m bench.credential_check                   # this checkout
    .venv/bin/python -m bench.credential_check --before DIR      # and a checkout from before the check

Every signed request now reads its worker's credential generation in the round trip it makes for the
nonce (docs/DEPLOY.md, "The credential copy"). Two measurements, both as server CPU
(`time.process_time` of the process doing the work), medians over interleaved rounds:

1. The nonce step alone, before and now, in one process per backend: Redis (`SET NX` before, the
   script that also returns the generation now), PostgreSQL and SQLite without Redis (`INSERT ...
   RETURNING id` before, the same insert returning the generation now), and the copy's validation.
   The difference is the check's cost; the target is under 0.2 ms.
2. Whole requests through Django's test client (`bench/request_cpu.py`): config, heartbeat, v1 pull +
   report, exchange 10+10, in this checkout and, with `--before`, in the older one, alternately, each
   on a database of its own. The lean path may not get slower by more than the check's cost.

Prints a table and writes bench/results/credential-check-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common
from bench.portal import bench_env, redis_reachable

TARGET_CHECK_MS = 0.2
BACKENDS = ("postgresql+redis", "postgresql", "sqlite")


def _env(backend: str, log_dir: Path, database: str, sqlite_dir: Path) -> dict[str, str]:
    env = bench_env(redis=backend.endswith("+redis"), pool=False, log_dir=log_dir)
    if backend == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{sqlite_dir / (database + '.sqlite3')}"
    else:
        env["DATABASE_URL"] = common.database_url(database)
    return env


def _migrate(tree: Path, env: dict[str, str], backend: str, database: str) -> None:
    if backend != "sqlite":
        common.recreate_database(database)
    proc = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise SystemExit(f"migrate failed in {tree}:\n{proc.stderr[-2000:]}")


# --- 1. the nonce step alone -------------------------------------------------------------------------


def micro_child(rounds: int, calls: int) -> None:
    """In a child with the backend's settings: CPU per call of the nonce step, before and now."""
    import django

    django.setup()
    import datetime as _dt
    import secrets
    import statistics

    from django.conf import settings
    from django.db import connection

    from core.redis import redis_client
    from releases_app.selectors import update_target_of
    from workers_mgmt.credential_cache import credential_cached, credential_remember
    from workers_mgmt.models import RequestNonce, WorkerCredential
    from workers_mgmt.nonces import nonce_record
    from workers_mgmt.services import worker_create

    worker, _issued = worker_create(worker_id=f"cc-{secrets.token_hex(4)}")
    now = _dt.datetime.now(_dt.UTC)
    table = RequestNonce._meta.db_table

    def before(nonce: str) -> None:
        # What workers_mgmt/nonces.py did before the check (one round trip, no generation).
        if settings.REDIS_URL:
            redis_client().set(f"{settings.LEADOPS_REDIS_PREFIX}:nonce:{worker.pk}:{nonce}", b"1", nx=True,
                               ex=settings.LEADOPS_NONCE_TTL_S)
            return
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {table} (worker_id, nonce, seen_at) VALUES (%s, %s, %s) "
                           "ON CONFLICT (worker_id, nonce) DO NOTHING RETURNING id", [worker.pk, nonce, now])
            cursor.fetchone()

    def now_(nonce: str) -> None:
        nonce_record(worker_id=worker.pk, nonce=nonce, seen_at=now)

    credential = WorkerCredential.objects.select_related("worker").get(worker=worker)
    generation = nonce_record(worker_id=worker.pk, nonce=secrets.token_urlsafe(16), seen_at=now).generation
    credential_remember(credential=credential, secret="s", generation=generation)

    def copy_hit(_nonce: str) -> None:
        if credential_cached(credential.key_id, generation=generation) is None:
            # The copy lives LEADOPS_CREDENTIAL_CACHE_S: a long round outlives it. Made again (and
            # counted: a real request would have read the row then).
            credential_remember(credential=credential, secret="s", generation=generation)

    def update_target(_nonce: str) -> None:
        update_target_of(worker.pk)

    def per_call_ms(fn) -> float:
        nonces = [secrets.token_urlsafe(16) for _ in range(calls)]
        start = time.process_time()
        for nonce in nonces:
            fn(nonce)
        return (time.process_time() - start) * 1000 / calls

    steps = {"before": before, "now": now_, "copy": copy_hit, "update_target": update_target}
    for fn in steps.values():  # warm up
        per_call_ms(fn)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            samples[name].append(per_call_ms(fn))
    json.dump({name: statistics.median(values) for name, values in samples.items()}, sys.stdout)


def micro(backend: str, env: dict[str, str], rounds: int, calls: int) -> dict[str, float]:
    result = common.child_json(["-m", "bench.credential_check", "--micro-child", str(rounds), str(calls)],
                               tree=common.ROOT, env=env, what=f"micro ({backend})")
    result["check_ms"] = result["now"] - result["before"]
    return result


# --- 2. whole requests ---------------------------------------------------------------------------------


def requests_cpu(tree: Path, env: dict[str, str], reps: int, script: Path) -> dict[str, float]:
    return common.child_json([str(script), str(reps)], tree=tree, env=env, what="request_cpu")


def main() -> None:
    parser = common.before_after_parser(__doc__ or "", before="a checkout from before the check, measured side by side",
                                        reps=150, reps_help="requests of each kind per round",
                                        calls_help="nonce steps per micro round")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--micro-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.micro_child:
        micro_child(*args.micro_child)
        return

    backends = [b for b in args.backends.split(",") if b]
    if any(b.endswith("+redis") for b in backends) and not redis_reachable():
        raise SystemExit("Redis at 127.0.0.1:6379 is not reachable")
    trees = {"now": common.ROOT}
    if args.before:
        trees["before"] = args.before.resolve()
    log_dir = Path(tempfile.mkdtemp(prefix="credential-check-"))
    # A copy outside the bench folder: run from there, the script's own folder (first on sys.path)
    # holds nothing that could shadow a module of either checkout.
    script = log_dir / "request_cpu.py"
    shutil.copyfile(common.ROOT / "bench" / "request_cpu.py", script)
    prefix = os.environ.get("BENCH_DB_PREFIX", "leadops_bench")
    results: dict[str, dict] = {"micro": {}, "requests": {}}
    started = time.time()
    for backend in backends:
        database = f"{prefix}_cc_micro"
        env = _env(backend, log_dir, database, log_dir)
        _migrate(common.ROOT, env, backend, database)
        results["micro"][backend] = micro(backend, env, args.rounds, args.calls)
        print(f"[{backend}] nonce step: {json.dumps(results['micro'][backend])}", flush=True)

        envs = {}
        for name, tree in trees.items():
            db = f"{prefix}_cc_{name}"
            envs[name] = _env(backend, log_dir, db, log_dir)
            _migrate(tree, envs[name], backend, db)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for round_index in range(args.rounds):
            # Alternate the order, so neither checkout always runs on the warmer (or busier) machine.
            order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
            for name in order:
                runs[name].append(requests_cpu(trees[name], envs[name], args.reps, script))
            print(f"[{backend}] round {round_index + 1}: " + "; ".join(
                f"{name} {json.dumps({k: round(v, 2) for k, v in runs[name][-1].items()})}" for name in order),
                flush=True)
        results["requests"][backend] = {
            name: {kind: common.median([run[kind] for run in values]) for kind in values[0]}
            for name, values in runs.items()
        }
        results["requests"][backend]["spread"] = {
            name: {kind: common.spread([run[kind] for run in values]) for kind in values[0]}
            for name, values in runs.items()
        }
        if "before" in runs:
            # Each round ran both checkouts back to back: the median of those paired differences
            # is what the change costs, whatever the machine's load did between rounds.
            results["requests"][backend]["paired_delta"] = {
                kind: common.median([now[kind] - before[kind] for now, before in
                                     zip(runs["now"], runs["before"], strict=True)])
                for kind in runs["now"][0]
            }
        if backend != "sqlite":
            for name in trees:
                common.drop_database(f"{prefix}_cc_{name}")
            common.drop_database(database)

    rows = []
    for backend in backends:
        m = results["micro"][backend]
        rows.append((f"nonce step + generation check ({backend})", m["before"], m["now"], m["check_ms"],
                     m["check_ms"] <= TARGET_CHECK_MS))
        rows.append((f"copy validation, hit ({backend})", None, m["copy"], None, None))
        rows.append((f"heartbeat's update_target statement, new ({backend})", None, m["update_target"], None,
                     None))
        req = results["requests"][backend]
        for kind in req["now"]:
            before = req.get("before", {}).get(kind)
            delta = req.get("paired_delta", {}).get(kind)
            # The check may cost what it costs; the heartbeat also answers update_target now (its
            # own statement, measured above), which is a new answer, not the lean path getting slower.
            allowed = max(m["check_ms"], 0.0) + (m["update_target"] if kind == "heartbeat" else 0.0)
            ok = None if delta is None or before is None else delta <= allowed + 0.05 * before
            rows.append((f"{kind} ({backend})", before, req["now"][kind], delta, ok))
    print()
    print(f"{'server CPU ms per call (medians; delta: median of paired rounds)':<62} "
          f"{'before':>8} {'now':>8} {'delta':>8}  verdict")
    for label, before, now, delta, ok in rows:
        def fmt(value):
            return "-" if value is None else f"{value:8.3f}"
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{label:<62} {fmt(before):>8} {fmt(now):>8} {fmt(delta):>8}  {verdict}")
    print(f"\ntarget: the check under {TARGET_CHECK_MS} ms of server CPU; a request no slower than the check's "
          "cost (the heartbeat: plus its new update_target statement), plus 5% of its CPU for noise")
    payload = {"machine": common.machine_info(), "started": started, "seconds": time.time() - started,
               "args": {k: str(v) for k, v in vars(args).items()}, "target_check_ms": TARGET_CHECK_MS,
               "results": results,
               "rows": [dict(zip(("metric", "before_ms", "now_ms", "delta_ms", "pass"), row, strict=True))
                        for row in rows]}
    out = common.ROOT / "bench" / "results" / f"credential-check-{dt.date.today().isoformat()}.json"
    common.dump_json(out, payload)
    print(f"written {out.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
