"""Benchmark the SQLite job store with several worker processes (not a test).

    .venv/bin/python bench/bench_db.py [--jobs 400] [--workers 4]

Phase 1, claims: N queued jobs, W processes call claim_next until the queue is empty.
Phase 2, job-record overhead: every DB write one job causes end to end (add, claim, save
running, save uploading, save done, two Slack message rows, one LLM call row), timed per job.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _open(url: str, outbox: str):
    from slack_ai_addon.storage.db import open_sql_store

    return open_sql_store(url, outbox_path=Path(outbox))


def _claimer(url: str, outbox: str, node: str, start: mp.Event, q: mp.Queue) -> None:
    store = _open(url, outbox)
    start.wait()
    n = 0
    t0 = time.perf_counter()
    while store.claim_next(node, 60) is not None:
        n += 1
    q.put((n, time.perf_counter() - t0))
    store.close()


def _lifecycle(url: str, outbox: str, node: str, count: int, start: mp.Event, q: mp.Queue) -> None:
    from slack_ai_addon.core.jobs import Job, JobKind, JobStatus, Requester

    store = _open(url, outbox)
    start.wait()
    per_job = []
    for i in range(count):
        t0 = time.perf_counter()
        job = store.add(Job(kind=JobKind.RENDER, request_text=f"a red cube {i}",
                            requester=Requester(user_id="U1", channel_id="C1", source="slack")))
        store.record_message(correlation_id=job.correlation_id, direction="in", text=job.request_text, job_id=job.id)
        job = store.claim(job.id, node, 60)
        store.record_llm_call(correlation_id=job.correlation_id, provider="offline", requested_model="",
                              actual_model="", task="interpret", latency_ms=1.0, job_id=job.id)
        for write, status in (("running", JobStatus.RUNNING), ("uploading", JobStatus.UPLOADING),
                              ("final", JobStatus.DONE)):
            store.transition(job.lease, write, job, status)  # fenced writes, as the pipeline makes
        store.record_message(correlation_id=job.correlation_id, direction="out", text="done", job_id=job.id)
        per_job.append(time.perf_counter() - t0)
    q.put(per_job)
    store.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/jobs.db"
        from slack_ai_addon.core.jobs import Job, JobKind

        seed = _open(url, f"{tmp}/seed.jsonl")
        for i in range(args.jobs):
            seed.add(Job(kind=JobKind.RENDER, request_text=f"job {i}"))
        seed.close()

        start, q = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_claimer, args=(url, f"{tmp}/o{i}.jsonl", f"node{i}", start, q))
                 for i in range(args.workers)]
        for p in procs:
            p.start()
        time.sleep(2.0)  # let every process import and open its connection
        t0 = time.perf_counter()
        start.set()
        results = [q.get(timeout=300) for _ in procs]
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
        claimed = sum(n for n, _ in results)
        print(f"claims: {claimed} jobs by {args.workers} processes in {wall:.2f}s -> {claimed / wall:.0f} claims/s "
              f"(per process: {[n for n, _ in results]})")

        per = args.jobs // args.workers
        start, q = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_lifecycle, args=(url, f"{tmp}/l{i}.jsonl", f"node{i}", per, start, q))
                 for i in range(args.workers)]
        for p in procs:
            p.start()
        time.sleep(2.0)
        t0 = time.perf_counter()
        start.set()
        timings = [t for _ in procs for t in q.get(timeout=300)]
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
        timings.sort()
        p50 = statistics.median(timings) * 1000
        p95 = timings[int(len(timings) * 0.95) - 1] * 1000
        print(f"job-record overhead (8 writes/job): {len(timings)} jobs by {args.workers} processes in {wall:.2f}s; "
              f"per job p50 {p50:.1f} ms, p95 {p95:.1f} ms, throughput {len(timings) / wall:.0f} jobs/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
