"""Farm throughput: 1, 2 and 3 worker processes on one SQLite job table (not a test).

    .venv/bin/python bench/bench_farm.py [--jobs 30] [--workers 1,2,3] [--quick] [--no-write]

Each worker is a process of its own with the real node: `build_runtime` (offline
interpreter, real bpy renderer), `runtime.dispatcher(role="worker")` and `run_headless`, the
loop `serve --role worker` runs, with its heartbeat. All workers load bpy first and wait at a
barrier; then the jobs (tiny Cycles stills, 160x120, 16 samples, from a prompt) are already
queued and every worker starts draining at once. A pipeline listener in each worker stamps
STARTED (the RUNNING write, just before the render) and DONE; the claim time is the row's
`claimed_at`. Measured per W:

- throughput: jobs / (last DONE - first claim), in jobs per minute;
- claim to start: STARTED - claimed_at (claim, interpret, the RUNNING write, the hand-over to
  the main thread);
- finish to next claim: claimed_at of a node's next job - DONE of its previous one (negative
  when the node claimed ahead while it was still rendering);
- idle gap: STARTED of a node's next job - DONE of its previous one: what the main thread
  waited between two renders (the scheduling overhead a render pays).

`--quick` runs 8 jobs per W (under a minute). Writes "## Farm throughput" into
docs/BENCHMARKS.md unless --no-write.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## Farm throughput"
PROMPT = "a red cube on a floor, cycles, 160x120, 16 samples"


# ---------------------------------------------------------------------------- worker process
def worker(db: str, node: str, out: str, events_path: str, barrier: str) -> int:
    import threading

    from slack_ai_addon.cli.serve import build_agent_runtime
    from slack_ai_addon.core.config import Settings
    from slack_ai_addon.core.dispatcher import run_headless
    from slack_ai_addon.core.jobs import LIVE_STATUSES, JobStatus

    settings = Settings(database_url=db, node_id=node, output_dir=out, provider_order="offline")
    runtime = build_agent_runtime(settings, with_renderer=True)
    events: list[tuple[str, str, float]] = []

    class Stamp:
        def on_job_event(self, event) -> None:  # noqa: ANN001
            events.append((str(event.kind), event.job.id, time.time()))

    runtime.add_listener(Stamp())
    Path(barrier, f"ready-{node}").touch()
    while not Path(barrier, "go").exists():
        time.sleep(0.005)
    dispatcher = runtime.dispatcher(role="worker")
    checked = [0.0]

    def queue_empty() -> bool:  # asked every loop: look at the table at most twice a second
        now = time.monotonic()
        if now - checked[0] < 0.5 or not dispatcher.idle():
            return False
        checked[0] = now
        return runtime.store.count((JobStatus.QUEUED, *LIVE_STATUSES)) == 0

    run_headless(dispatcher, threading.Event(), until=queue_empty)
    runtime.close()
    Path(events_path).write_text(json.dumps(events))
    return 0


# ---------------------------------------------------------------------------- one round
def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))] if values else float("nan")


def run_round(workers: int, jobs: int, tmp: Path) -> dict[str, float]:
    from slack_ai_addon.core.jobs import Job, JobKind, JobStatus, Requester
    from slack_ai_addon.storage.db import open_sql_store

    root = tmp / f"w{workers}"
    root.mkdir()
    db = f"sqlite:///{root / 'jobs.db'}"
    store = open_sql_store(db, outbox_path=root / "outbox.jsonl")
    barrier = root / "barrier"
    barrier.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "OPENAI", "S3_"))}
    env["PYTHONPATH"] = str(ROOT)
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", db, f"node-{i}", str(root / f"out-{i}"),
                               str(root / f"events-{i}.json"), str(barrier)], env=env, cwd=root)
             for i in range(workers)]
    ids = [store.add(Job(kind=JobKind.RENDER, request_text=PROMPT,
                         requester=Requester(user_id=f"U{i % 5}", source="farm"))).id for i in range(jobs)]
    deadline = time.monotonic() + 300
    while len(list(barrier.glob("ready-*"))) < workers:
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit("a worker did not start")
        time.sleep(0.05)
    (barrier / "go").touch()
    for p in procs:
        if p.wait(timeout=1800) != 0:
            raise SystemExit(f"a worker failed: {p.returncode}")
    rows = {j: store.get(j) for j in ids}
    store.close()
    bad = [j for j, row in rows.items() if row is None or row.status is not JobStatus.DONE]
    if bad:
        raise SystemExit(f"{len(bad)} jobs did not finish: {bad[:3]}")
    stamps: dict[str, dict[str, float]] = {}
    for i in range(workers):
        for kind, job_id, t in json.loads((root / f"events-{i}.json").read_text()):
            stamps.setdefault(job_id, {})[kind] = t
    claim_to_start, finish_to_claim, idle_gap = [], [], []
    by_node: dict[str, list[tuple[float, float, float]]] = {}
    for job_id, row in rows.items():
        assert row is not None
        s = stamps[job_id]
        claim_to_start.append(s["started"] - row.claimed_at)
        by_node.setdefault(row.lease_owner, []).append((row.claimed_at, s["started"], s["done"]))
    for seq in by_node.values():
        seq.sort()
        for (_, _, done), (claimed, started, _) in zip(seq, seq[1:], strict=False):
            finish_to_claim.append(claimed - done)
            idle_gap.append(started - done)
    first_claim = min(r.claimed_at for r in rows.values() if r is not None)
    last_done = max(s["done"] for s in stamps.values())
    render = [r.timings.get("render_s", 0.0) for r in rows.values() if r is not None]
    span = last_done - first_claim
    shutil.rmtree(root, ignore_errors=True)
    return {"workers": workers, "jobs": jobs, "span_s": span, "jobs_per_min": jobs / span * 60,
            "render_p50_s": statistics.median(render), "render_sum_s": sum(render),
            "claim_to_start_p50_ms": statistics.median(claim_to_start) * 1000,
            "claim_to_start_p95_ms": pct(claim_to_start, 0.95) * 1000,
            "finish_to_claim_p50_ms": statistics.median(finish_to_claim) * 1000 if finish_to_claim else float("nan"),
            "idle_gap_p50_ms": statistics.median(idle_gap) * 1000 if idle_gap else float("nan"),
            "idle_gap_p95_ms": pct(idle_gap, 0.95) * 1000,
            "per_node": ", ".join(f"{len(v)}" for _, v in sorted(by_node.items()))}


def write_section(text: str) -> None:
    path = ROOT / "docs" / "BENCHMARKS.md"
    old = path.read_text(encoding="utf-8") if path.exists() else ""  # re-read just before writing
    start = old.find(SECTION)
    if start >= 0:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + (old[end:] if end >= 0 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=30, help="jobs per round (default 30)")
    ap.add_argument("--workers", default="1,2,3", help="worker counts, comma-separated (default 1,2,3)")
    ap.add_argument("--quick", action="store_true", help="8 jobs per round: under a minute")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--worker", nargs=5, metavar=("DB", "NODE", "OUT", "EVENTS", "BARRIER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)
    jobs = 8 if args.quick else args.jobs
    counts = [int(w) for w in args.workers.split(",")]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench_farm_"))
    try:
        results = [run_round(w, jobs, tmp) for w in counts]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    load_after = os.getloadavg()
    import bpy

    base = results[0]["jobs_per_min"]
    lines = [f"| {r['workers']} | {r['jobs_per_min']:.1f} ({r['jobs_per_min'] / base:.2f}x) | {r['span_s']:.1f} s | "
             f"{r['render_p50_s'] * 1000:.0f} ms | {r['claim_to_start_p50_ms']:.1f} / "
             f"{r['claim_to_start_p95_ms']:.0f} ms | {r['finish_to_claim_p50_ms']:.1f} ms | "
             f"{r['idle_gap_p50_ms']:.1f} / {r['idle_gap_p95_ms']:.1f} ms | {r['per_node']} |" for r in results]
    header = ("| workers | jobs/min (vs 1) | first claim to last done | render p50 | claim to start p50 / p95 "
              "| finish to next claim p50 | render-to-render gap p50 / p95 | jobs per node |")
    table = "\n".join(lines)
    gap50 = [r["idle_gap_p50_ms"] for r in results]
    gap95 = max(r["idle_gap_p95_ms"] for r in results)
    met = "met" if max(gap50) < 100 else "NOT met"
    verdict = (f"Scheduling overhead per job (the render-to-render gap): p50 {min(gap50):.1f}–{max(gap50):.1f} ms, "
               f"p95 at most {gap95:.0f} ms: the 100 ms target is {met}. The render itself went from "
               f"{results[0]['render_p50_s'] * 1000:.0f} ms (p50) with {results[0]['workers']} worker to "
               f"{results[-1]['render_p50_s'] * 1000:.0f} ms with {results[-1]['workers']}: the processes share "
               f"the same cores, so throughput is bounded by the CPU, not by the queue.")
    cmd = "--quick" if args.quick else f"--jobs {jobs}"
    text = f"""{SECTION}

`.venv/bin/python bench/bench_farm.py {cmd} --workers {args.workers}` (bpy {bpy.app.version_string}; each
worker a process with the real node: offline interpreter, `BlenderSceneRenderer`, dispatcher
and `run_headless` as in `serve --role worker`, 10 s heartbeat; one SQLite (WAL) job table;
{jobs} tiny Cycles stills (160x120, 16 samples) per round, queued before the workers start;
{os.cpu_count()} CPU cores **shared with other work**: load average {load_before[0]:.1f} before,
{load_after[0]:.1f} after; ran {elapsed:.0f} s):

{header}
|---|---|---|---|---|---|---|---|
{table}

{verdict}

"Claim to start" is claim, interpretation, the RUNNING write and the hand-over to the main
thread; "finish to next claim" is negative when a node claimed its next job while still
rendering (it prepares ahead); the render-to-render gap is how long a node's main thread
waited between two renders: the scheduling overhead each job pays. Target: under 100 ms per
job, with throughput bounded by the cores, not by the queue: on 2 cores a second and third
Cycles process share the same CPUs, so jobs/min cannot scale with W here; on a farm each node
has its own cores.

**SQL Server, 100 nodes (estimated, not measured: no SQL Server on this machine).** A claim is
one statement (`UPDATE` of the `TOP (1)` queued row `WITH (UPDLOCK, READPAST, ROWLOCK)`,
`OUTPUT` the row), so claimers skip each other's locked rows instead of queueing. At 1–3 ms per
round trip on a LAN that is ~300–1,000 claims/s per claiming connection and more in parallel
(`bench/bench_db.py` measures SQLite only; the same loop against a SQL Server URL would
measure it). Demand from 100 nodes: one claim per job plus one heartbeat per node per `heartbeat_s`:
with 10 s renders and a 10 s heartbeat, ~10 claims/s + ~10 heartbeats/s, two orders of
magnitude below what the statement can do. SQLite's one writer (~3,900 claims/s above) is
fine for one machine; a farm spread over machines needs SQL Server for the shared table.
"""
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
