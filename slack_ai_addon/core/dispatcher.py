"""One dispatcher, two drivers.

`Dispatcher.drain(budget_s)` is called on Blender's main thread: by a persistent
`bpy.app.timers` callback in the GUI, by a blocking loop in headless runs (timers never
fire there). It claims jobs from the shared store, hands preparation (LLM calls, analysis)
to an I/O thread pool, renders prepared jobs on the calling thread, and hands finishing
(storage, replies, DB writes) back to the pool, so the network never freezes Blender.

A heartbeat thread renews the leases of the jobs this node holds and notices cancels.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

from .jobs import Job, JobKind, JobStatus
from .pipeline import JobPipeline, RenderResult, UserError

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0
UPLOAD_RETRY_INTERVAL_S = 30.0  # uploads queued while object storage was down


@dataclass
class _Ready:
    job: Job


class Dispatcher:
    def __init__(self, pipeline: JobPipeline, *, io_workers: int = 4, max_in_flight: int = 2,
                 heartbeat_s: float = 10.0, can_render: bool = True, incremental: bool = False,
                 claim_only: set[str] | None = None) -> None:
        """`incremental`: render a step (a frame) per `drain` call and return, so a GUI timer
        keeps Blender responsive between frames; headless loops render a job in one go.
        `claim_only`: take only these job ids (a one-shot run on a shared database must not
        take other people's jobs); ids are removed once claimed."""
        self.pipeline = pipeline
        self.store = pipeline.deps.store
        self.node_id = pipeline.deps.node_id
        self.lease_s = pipeline.deps.lease_s
        self.can_render = can_render and pipeline.deps.renderer is not None
        self.max_in_flight = max_in_flight
        # Daemon workers: a Blender that quits must not wait on a hung HTTP call.
        self.io = ThreadPoolExecutor(max_workers=io_workers, thread_name_prefix="slackai-io")
        self._ready: queue.SimpleQueue[_Ready] = queue.SimpleQueue()
        self._held: dict[str, Job] = {}  # job id -> job, while this node holds its lease
        self._cancel: set[str] = set()
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        self._last_upload_retry = 0.0
        self._housekeeping: Future[None] | None = None
        self._queue_was_empty = False  # what the last claim pass found
        self._upload_retry: Future[None] | None = None
        self.incremental = incremental
        self.claim_only = claim_only
        self._active: tuple[Job, Generator[None, None, RenderResult]] | None = None
        self.current_job_id = ""
        self.started_at = time.time()
        self.jobs_done = 0
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, args=(heartbeat_s,),
                                           name="slackai-heartbeat", daemon=True)
        self._heartbeat.start()

    # ------------------------------------------------------------------ main-thread API
    def drain(self, budget_s: float = 0.1) -> int:
        """Do what fits in the budget; returns how many jobs it rendered or finished."""
        deadline = time.monotonic() + budget_s
        done = 0
        # The database may be SQL Server across the network: sweeping and claiming run on the
        # I/O pool, one task at a time, so a slow or hung database never freezes Blender.
        if self._housekeeping is None or self._housekeeping.done():
            self._housekeeping = self.io.submit(self._sweep_and_claim)
        # At least one unit of work per call (a render step, or a whole job when not
        # incremental), then more while the budget lasts.
        worked = False
        while not (worked and time.monotonic() >= deadline):
            if self._active is not None:
                done += self._step_active()
                worked = True
                continue
            try:
                ready = self._ready.get_nowait()
            except queue.Empty:
                break
            if self.incremental:
                self._start_active(ready.job)
            else:
                self._render_and_finish(ready.job)
                done += 1
                worked = True
        return done

    def in_flight(self) -> int:
        with self._lock:
            return len(self._held)

    def idle(self) -> bool:
        """Nothing held, ready or rendering, and the last look at the queue found nothing."""
        looked = self._housekeeping is not None and (self._housekeeping.done() or self._queue_was_empty)
        return looked and self.in_flight() == 0 and self._ready.empty() and self._active is None

    def _sweep_and_claim(self) -> None:
        """I/O pool: replay buffered records, requeue expired leases, retry queued uploads
        (each on its own interval), then claim what this node has room for."""
        try:
            now = time.time()
            if now - self._last_sweep > SWEEP_INTERVAL_S:
                self._last_sweep = now
                self._flush_buffered_records()
                try:
                    for job_id in self.store.requeue_expired(now):
                        log.warning("lease expired; job requeued", extra={"job_id": job_id})
                except Exception:
                    log.exception("lease sweep failed")
                if now - self._last_upload_retry > UPLOAD_RETRY_INTERVAL_S:
                    self._last_upload_retry = now
                    self._retry_uploads()
            self._claim_more()
        except BaseException:  # the pool would swallow it
            log.exception("dispatcher housekeeping failed")

    def request_cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancel.add(job_id)

    def shutdown(self, wait: bool = True) -> None:
        self._stop.set()
        if self._active is not None:  # a GUI render in the middle: its cleanup runs on close()
            job, steps = self._active
            self._active = None
            steps.close()
            self._release(job.id)
            self.pipeline.fail(job, "Blender stopped the agent before the render finished")
        self.io.shutdown(wait=wait, cancel_futures=not wait)

    # ------------------------------------------------------------------ internals
    def _claim_next(self) -> Job | None:
        if self.claim_only is None:
            kinds = None if self.can_render else (JobKind.ANALYZE,)
            return self.store.claim_next(self.node_id, self.lease_s, kinds)
        for job_id in sorted(self.claim_only):
            self.claim_only.discard(job_id)
            job = self.store.claim(job_id, self.node_id, self.lease_s)
            if job is not None:
                return job
        return None

    def _claim_more(self) -> None:
        claimed = 0
        while self.in_flight() < self.max_in_flight:
            try:
                job = self._claim_next()
            except Exception:
                log.exception("claim failed")
                return
            if job is None:
                self._queue_was_empty = claimed == 0
                return
            claimed += 1
            self._queue_was_empty = False
            with self._lock:
                self._held[job.id] = job
            self.io.submit(self._prepare, job)

    def _prepare(self, job: Job) -> None:
        try:
            job = self.pipeline.prepare(job)
        except UserError as exc:
            self._release(job.id)
            self.pipeline.fail(job, str(exc))
            return
        except BaseException as exc:  # the pool would swallow it; the user must hear
            log.exception("prepare failed", extra={"job_id": job.id})
            self._release(job.id)
            self.pipeline.fail(job, f"could not interpret the request: {exc}")
            return
        if job.kind is JobKind.RENDER:
            self._ready.put(_Ready(job))
        else:
            self._finish(job, None)

    def _cancelled_before_render(self, job: Job) -> bool:
        fresh = self.store.get(job.id)
        if fresh is not None and (fresh.cancel_requested or fresh.status.is_final):
            self._release(job.id)
            if not fresh.status.is_final:
                fresh.status = JobStatus.CANCELLED
                fresh.error = "cancelled before rendering"
                self.pipeline.finish(fresh, None)
            return True
        return False

    def _start_active(self, job: Job) -> None:
        if self._cancelled_before_render(job):
            return
        self.current_job_id = job.id
        self._active = (job, self.pipeline.render_steps(job, should_stop=lambda: self._should_stop(job)))

    def _step_active(self) -> int:
        """Advance the active render by one step; 1 when it finished (or failed)."""
        assert self._active is not None
        job, steps = self._active
        try:
            next(steps)
            return 0
        except StopIteration as done:
            self._active = None
            self.current_job_id = ""
            self.io.submit(self._finish, job, cast(RenderResult, done.value))
            return 1
        except BaseException as exc:
            log.exception("render failed", extra={"job_id": job.id})
            self._active = None
            self.current_job_id = ""
            self._release(job.id)
            self.pipeline.fail(job, f"render failed: {exc}")
            return 1

    def _render_and_finish(self, job: Job) -> None:
        if self._cancelled_before_render(job):
            return
        self.current_job_id = job.id
        try:
            result = self.pipeline.render(job, should_stop=lambda: self._should_stop(job))
        except BaseException as exc:
            log.exception("render failed", extra={"job_id": job.id})
            self._release(job.id)
            self.pipeline.fail(job, f"render failed: {exc}")
            return
        finally:
            self.current_job_id = ""
        self.io.submit(self._finish, job, result)

    def _flush_buffered_records(self) -> None:
        """Writes buffered while the database was down go in before this node sweeps leases:
        else its own finished jobs, still "running" in the table, would be requeued."""
        flush = getattr(self.store, "flush_outbox", None)
        if flush is None:
            return
        try:
            flushed = flush()
            if flushed:
                log.info("wrote %d record(s) buffered during a database outage", flushed)
        except Exception as exc:  # still down: the sweep below fails the same way and says so
            log.debug("database still unavailable: %s", exc)

    def _retry_uploads(self) -> None:
        """Send uploads queued during an object-storage outage, on the I/O pool (network)."""
        retry = getattr(self.pipeline.deps.output_store, "retry_pending", None)
        if retry is None or (self._upload_retry is not None and not self._upload_retry.done()):
            return

        def run() -> None:
            try:
                sent = retry()
                if sent:
                    log.info("uploaded %d queued output(s) to object storage", sent)
            except Exception:
                log.warning("retrying queued uploads failed; will try again", exc_info=True)

        self._upload_retry = self.io.submit(run)

    def _should_stop(self, job: Job) -> str:
        with self._lock:
            if job.id in self._cancel:
                return "cancelled"
        return ""

    def _finish(self, job: Job, result: RenderResult | None) -> None:
        try:
            self.pipeline.finish(job, result)
            self.jobs_done += 1
        except BaseException:
            log.exception("finish failed", extra={"job_id": job.id})
        finally:
            self._release(job.id)

    def _release(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)
            self._cancel.discard(job_id)

    def _heartbeat_loop(self, interval: float) -> None:
        # Runs until shutdown; a dead heartbeat would let other nodes steal live jobs,
        # so every error is caught and logged.
        while not self._stop.wait(interval):
            with self._lock:
                held = list(self._held)
            for job_id in held:
                try:
                    if not self.store.renew_lease(job_id, self.node_id, self.lease_s):
                        self.request_cancel(job_id)
                except BaseException:
                    log.exception("lease renewal failed", extra={"job_id": job_id})

    def wait_idle(self, timeout_s: float, tick_s: float = 0.05) -> bool:
        """Headless helper: drain until nothing is held or queued here (tests, one-shot)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.drain(tick_s)
            if self.idle():
                return True
            time.sleep(tick_s)
        return False


def track(future: Future[object]) -> None:
    """Log exceptions of fire-and-forget futures."""
    def done(f: Future[object]) -> None:
        exc = f.exception()
        if exc is not None:
            log.error("background task failed: %s", exc)
    future.add_done_callback(done)
