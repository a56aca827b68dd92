"""One dispatcher, two drivers.

`Dispatcher.drain(budget_s)` is called on Blender's main thread: by a persistent
`bpy.app.timers` callback in the GUI, and by `run_headless` (below) everywhere else: the
CLI's `render`/`analyze`, `command`, `serve`, farm workers and the tests. Timers never fire
in background Blender, so `run_headless` is the only other loop there is.

The main thread touches bpy and in-memory state only. Everything that talks to the
database or the network runs on the I/O pool: sweeping expired leases, claiming, preparing
(LLM calls, analysis), the RUNNING write, finishing (storage, final write, replies). What
the main thread needs to know (a cancel, a lost lease, the queue's length) is kept fresh in
memory by the pool and the heartbeat.

Every write carries the lease the job was claimed under (`core.jobs.Lease`). A node whose
lease was lost (it stalled past the lease and another node took the job) stops rendering,
writes nothing and says nothing: the new owner answers. A final write the database could
not take is parked and confirmed once the database answers, so the job still gets exactly
one final reply.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from .jobs import LIVE_STATUSES, Fenced, Job, JobKind, JobStatus, Lease, NodeInfo, Renewal
from .pipeline import JobPipeline, RenderResult, UserError

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0  # at most; a short lease sweeps at half the lease
QUEUE_DEPTH_INTERVAL_S = 1.0
UPLOAD_RETRY_INTERVAL_S = 30.0  # uploads queued while object storage was down
MAX_NODE_FAULTS_IN_A_ROW = 3  # renders failed in a row through the node's own fault; then it stops taking renders
STOPPING = "node stopping"
LEASE_LOST = "lease lost"


@dataclass
class _Held:
    """A job this node holds a lease on, and what the heartbeat learnt about it."""

    lease: Lease
    kind: JobKind = JobKind.RENDER
    cancel: bool = False
    lost: bool = False
    progress: dict[str, Any] = field(default_factory=dict)
    progress_written: dict[str, Any] = field(default_factory=dict)


class Dispatcher:
    def __init__(self, pipeline: JobPipeline, *, io_workers: int = 4, max_in_flight: int = 3,
                 heartbeat_s: float = 10.0, can_render: bool = True, incremental: bool = False,
                 claim_only: set[str] | None = None, stop_grace_s: float = 30.0,
                 node_info: NodeInfo | None = None) -> None:
        """`incremental`: render a step (a frame) per `drain` call and return, so a GUI timer
        keeps Blender responsive between frames; headless loops render a job in one go.
        `claim_only`: take only these job ids (a one-shot run on a shared database must not
        take other people's jobs); ids are removed once claimed. `node_info`: this node's row
        in the node registry, written by the heartbeat (None: a one-shot run, not a node)."""
        self.pipeline = pipeline
        self.store = pipeline.deps.store
        self.node_id = pipeline.deps.node_id
        self.lease_s = pipeline.deps.lease_s
        self.heartbeat_s = heartbeat_s
        self.stop_grace_s = stop_grace_s
        self.can_render = can_render and pipeline.deps.renderer is not None
        self.max_in_flight = max_in_flight
        self.io = ThreadPoolExecutor(max_workers=io_workers, thread_name_prefix="slackai-io")
        # Submits and cancels from the main thread (the panel), in the order they were made:
        # a Cancel right after Render must find the job's row.
        self._intake = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slackai-intake")
        self._ready: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._held: dict[str, _Held] = {}  # job id -> lease, while this node holds it
        self._parked: dict[str, Job] = {}  # final writes the database has not confirmed yet
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        self._last_depth = 0.0
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
        self.queue_depth = 0  # queued jobs in the shared table, as the I/O pool last saw it (-1: unknown)
        self.outcomes: dict[str, str] = {}  # job id -> how it ended here: done/failed/cancelled/lost/released/taken
        self._stopping_since: float | None = None
        self.node_info = node_info
        self._node_faults = 0  # renders in a row that failed through this node's own fault
        self.blocked = False  # too many of those: no more renders here
        if node_info is not None and not node_info.started_at:
            node_info.started_at = time.time()
        self._stop = threading.Event()
        self._wake = threading.Event()  # something happened off the main thread: drain again
        pipeline.progress_hook = self._note_progress
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, args=(heartbeat_s,),
                                           name="slackai-heartbeat", daemon=True)
        self._heartbeat.start()

    # ------------------------------------------------------------------ main-thread API
    def drain(self, budget_s: float = 0.1) -> int:
        """Do what fits in the budget; returns how many jobs it rendered or finished.

        Touches no database and no network: those run on the I/O pool."""
        deadline = time.monotonic() + budget_s
        done = 0
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
                job = self._ready.get_nowait()
            except queue.Empty:
                break
            if not self._may_render(job):
                continue
            if self.incremental:
                self._start_active(job)
            else:
                self._render_and_finish(job)
                done += 1
                worked = True
        return done

    def in_flight(self) -> int:
        with self._lock:
            return len(self._held)

    def idle(self) -> bool:
        """Nothing held, parked, ready or rendering, and the last look at the queue found nothing."""
        # A node that is stopping takes nothing new: it need not look at the queue again.
        looked = self.stopping or (self._housekeeping is not None
                                   and (self._housekeeping.done() or self._queue_was_empty))
        with self._lock:
            parked = len(self._parked)
        return looked and self.in_flight() == 0 and parked == 0 and self._ready.empty() and self._active is None

    def settled(self, job_id: str) -> bool:
        """This node is done with the job (finished it, lost it, handed it back, or could not take it)."""
        return job_id in self.outcomes

    def request_cancel(self, job_id: str) -> None:
        """Cancel a job: this node stops it at once if it holds it; the store is told on the pool."""
        with self._lock:
            held = self._held.get(job_id)
            if held is not None:
                held.cancel = True
        track(self._intake.submit(self.store.request_cancel, job_id))

    def submit(self, job: Job) -> Future[Job]:
        """Enqueue a new job from the main thread (the panel): the insert runs off it."""
        future = self._intake.submit(self.pipeline.submit, job)
        track(future)
        return future

    def begin_stop(self, grace_s: float | None = None) -> None:
        """Stop taking jobs. Jobs not started yet go back to the queue; a running render may go
        on for `grace_s` (default: the setting) and is then stopped and handed back."""
        if self._stopping_since is None:
            if grace_s is not None:
                self.stop_grace_s = grace_s
            self._stopping_since = time.monotonic()
            log.info("node stopping: no new jobs; a running render has %.0fs to finish", self.stop_grace_s)

    @property
    def stopping(self) -> bool:
        return self._stopping_since is not None

    def shutdown(self, wait: bool = True) -> None:
        self.begin_stop(0.0)
        if self._active is not None:  # a GUI render in the middle: its cleanup runs on close()
            job, steps = self._active
            self._active = None
            steps.close()
            self._hand_back(job)
        while True:
            try:
                self._hand_back(self._ready.get_nowait())
            except queue.Empty:
                break
        if wait and self._housekeeping is not None:
            try:
                self._housekeeping.result(timeout=30)
            except Exception:
                log.debug("housekeeping ended with an error", exc_info=True)
        self._stop.set()
        self._write_node_row(state="offline")
        self._intake.shutdown(wait=wait)
        self.io.shutdown(wait=wait, cancel_futures=not wait)

    # ------------------------------------------------------------------ main thread internals
    def _may_render(self, job: Job) -> bool:
        """In-memory checks only: a cancel or a lost lease the heartbeat saw, or a stop."""
        with self._lock:
            held = self._held.get(job.id)
        if held is None or held.lost:
            return False
        if held.cancel:
            job.status = JobStatus.RUNNING
            self.io.submit(self._finish, job, RenderResult(outputs=[], frames=0, stopped="cancelled"))
            return False
        if self.stopping:
            self.io.submit(self._hand_back, job)
            return False
        return True

    def _start_active(self, job: Job) -> None:
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
            self.io.submit(self._fail, job, f"render failed: {exc}", True)
            return 1

    def _render_and_finish(self, job: Job) -> None:
        self.current_job_id = job.id
        try:
            result = self.pipeline.render(job, should_stop=lambda: self._should_stop(job))
        except BaseException as exc:
            log.exception("render failed", extra={"job_id": job.id})
            self.io.submit(self._fail, job, f"render failed: {exc}", True)
            return
        finally:
            self.current_job_id = ""
        self.io.submit(self._finish, job, result)

    def _should_stop(self, job: Job) -> str:
        with self._lock:
            held = self._held.get(job.id)
        if held is None or held.lost:
            return LEASE_LOST
        if held.cancel:
            return "cancelled"
        if self._stopping_since is not None and time.monotonic() - self._stopping_since >= self.stop_grace_s:
            return STOPPING
        return ""

    def _note_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self._lock:
            held = self._held.get(job_id)
            if held is not None:
                held.progress = progress

    # ------------------------------------------------------------------ I/O pool
    def _sweep_and_claim(self) -> None:
        """Replay buffered writes, requeue expired leases, confirm parked final writes, retry
        queued uploads (each on its own interval), then claim what this node has room for."""
        try:
            now = time.time()
            if now - self._last_sweep > min(SWEEP_INTERVAL_S, self.lease_s / 2):
                self._last_sweep = now
                self._flush_buffered_records()
                try:
                    for job_id in self.store.requeue_expired():
                        self._after_expiry(job_id)
                except Exception as exc:
                    log.warning("lease sweep failed: %s", exc)
                self._confirm_parked()
                self._fail_unrunnable()
                if now - self._last_upload_retry > UPLOAD_RETRY_INTERVAL_S:
                    self._last_upload_retry = now
                    self._retry_uploads()
            if now - self._last_depth > QUEUE_DEPTH_INTERVAL_S:
                self._last_depth = now
                try:
                    self.queue_depth = self.store.count((JobStatus.QUEUED,))
                except Exception:
                    self.queue_depth = -1
            if not self.stopping:
                self._claim_more()
        except BaseException:  # the pool would swallow it
            log.exception("dispatcher housekeeping failed")
        finally:
            self._wake.set()

    def _after_expiry(self, job_id: str) -> None:
        """This node's sweep moved a job whose lease ran out: back to the queue, or failed
        for good after three nodes. The sweep that failed it is the one that says so (the
        guarded update lets exactly one sweep do it), so the user hears exactly once."""
        job = self.store.get(job_id)
        if job is None:
            return
        if job.status is JobStatus.FAILED:
            log.warning("lease expired on %d nodes; job failed", len(job.failed_nodes), extra={"job_id": job_id})
            self.pipeline.announce_final(job)
        else:
            log.warning("lease expired; job requeued", extra={"job_id": job_id})

    def _fail_unrunnable(self) -> None:
        """Capability routing: a queued job that no live node can run any more (the only GPU
        node went offline or got blocked) fails with the reason instead of waiting forever.
        The guarded update lets one sweeping node fail it, and that node announces it (the
        same final-announcement path as a finished job: exactly one final reply)."""
        try:
            waiting = self.store.queued_requirements()
        except Exception as exc:
            log.debug("could not read the queue's requirements: %s", exc)
            return
        if not waiting:
            return
        own = self.pipeline.own_capabilities() if self.can_render and not self.blocked and not self.stopping \
            else None
        reasons: dict[object, str] = {}
        for job_id, req in waiting:
            if req not in reasons:
                reasons[req] = self.pipeline.unrunnable(req, own=own)
            if not reasons[req]:
                continue
            try:
                job = self.store.fail_queued(job_id, reasons[req])
            except Exception as exc:
                log.warning("could not fail an unrunnable job: %s", exc, extra={"job_id": job_id})
                continue
            if job is not None:
                log.warning("no live node can run this job any more: %s", job.error, extra={"job_id": job_id})
                self.pipeline.announce_final(job)

    def _claim_next(self) -> tuple[Job | None, bool]:
        """The next job for this node, and whether the look covered every kind it takes."""
        if self.claim_only is None:
            # One render at a time: a render job held while another renders would only wait
            # here while another node could have started it. Analyses run on the pool, so
            # they may be taken beside a render (a quick /analyze is not stuck behind it).
            with self._lock:
                rendering = any(h.kind is JobKind.RENDER for h in self._held.values())
            restricted = self.can_render and (rendering or self.blocked)
            kinds = None if self.can_render and not restricted else (JobKind.ANALYZE,)
            return self.store.claim_next(self.node_id, self.lease_s, kinds,
                                         self.pipeline.deps.capabilities), not restricted
        for job_id in sorted(self.claim_only):
            self.claim_only.discard(job_id)
            job = self.store.claim(job_id, self.node_id, self.lease_s)
            if job is not None:
                return job, True
            self.outcomes[job_id] = "taken"
        return None, True

    def _claim_more(self) -> None:
        claimed = 0
        while self.in_flight() < self.max_in_flight and not self.stopping:
            try:
                job, looked_at_all = self._claim_next()
            except Exception as exc:
                log.warning("claim failed: %s", exc)
                return
            if job is None:
                # Only a look at every kind this node takes says the queue is empty (while a
                # render is held, only analyses were looked for).
                self._queue_was_empty = claimed == 0 and looked_at_all
                return
            claimed += 1
            self._queue_was_empty = False
            with self._lock:
                self._held[job.id] = _Held(job.lease, job.kind)
            log.info("claimed job (attempt %d)", job.attempts, extra={"job_id": job.id})
            self.io.submit(self._prepare, job)

    def _prepare(self, job: Job) -> None:
        try:
            try:
                job = self.pipeline.prepare(job)
            except UserError as exc:
                job.result["bad_input"] = True  # the CLI exits 2 for these
                self._fail(job, str(exc))
                return
            except Exception as exc:
                log.exception("prepare failed", extra={"job_id": job.id})
                self._fail(job, f"could not interpret the request: {exc}")
                return
            if self.stopping or self._engine_missing_here(job):
                self._hand_back(job)
                return
            renewal = self.store.renew_lease(job.lease, self.lease_s)
            if renewal is Renewal.LOST:
                self._drop(job, "lease lost before rendering")
                return
            if renewal is Renewal.CANCEL or self._flag(job.id, "cancel"):
                self._finish(job, RenderResult(outputs=[], frames=0, stopped="cancelled"))
                return
            if job.kind is not JobKind.RENDER:
                self._finish(job, None)
                return
            if self.pipeline.start(job) is Fenced.LOST:
                self._drop(job, "lease lost before rendering")
                return
            self._ready.put(job)
            self._wake.set()
        except BaseException:  # the pool would swallow it; the job must not stay held forever
            log.exception("preparing job failed", extra={"job_id": job.id})
            self._fail(job, "internal error while preparing the job")

    def _engine_missing_here(self, job: Job) -> bool:
        """The interpreted request chose an engine this node's Blender lacks (a text names its
        engine only once interpreted): record that requirement on the job and hand it back,
        so a node that has the engine takes it, or the sweep says that none does."""
        caps = self.pipeline.deps.capabilities
        if caps is None or self.claim_only is not None or job.kind is not JobKind.RENDER or job.spec is None:
            return False  # (a one-shot run renders its own job here or says why it cannot)
        engine = str((job.spec.get("output") or {}).get("engine") or "")
        if not engine or engine in caps.engines:
            return False
        job.requirements = dataclasses.replace(job.requirements, engine=engine)
        log.warning("the request needs %s, which this node's Blender lacks; handing it back", engine,
                    extra={"job_id": job.id})
        return True

    def _finish(self, job: Job, result: RenderResult | None) -> None:
        try:
            if result is not None and result.stopped == LEASE_LOST:
                self._drop(job, "lease lost during the render; its result is dropped")
                return
            if result is not None and result.stopped == STOPPING:
                self._hand_back(job)
                return
            if self._flag(job.id, "lost"):
                self._drop(job, "lease lost during the render; its result is dropped")
                return
            self._settle(job, self.pipeline.finish(job, result))
        except BaseException:
            log.exception("finish failed", extra={"job_id": job.id})
            self._release(job.id, "failed")

    def _fail(self, job: Job, message: str, node_fault: bool = False) -> None:
        """`node_fault`: the failure is this node's (Blender raised), not the request's."""
        if node_fault:
            job.result["node_fault"] = True
        try:
            self._settle(job, self.pipeline.fail(job, message))
        except BaseException:
            log.exception("could not record a failure", extra={"job_id": job.id})
            self._release(job.id, "failed")

    def _settle(self, job: Job, written: Fenced) -> None:
        if written is Fenced.APPLIED:
            self.jobs_done += 1
            self._count_node_faults(job)
            self._release(job.id, job.status.value)
        elif written is Fenced.LOST:
            self._drop(job, "lease lost before the result was recorded; its result is dropped")
        else:
            # The database did not take the final write: keep the result and confirm it once
            # the database answers (exactly one final reply, from whoever really finished it).
            log.warning("database unavailable: final state of job %s waits to be confirmed", job.id,
                        extra={"job_id": job.id})
            with self._lock:
                self._parked[job.id] = job
            self._release(job.id, "")

    def _count_node_faults(self, job: Job) -> None:
        """Three renders in a row that failed through this node's own fault (Blender raised, or
        "finished" without an image): stop taking renders, say so in the log and the registry,
        and leave the queue to healthy nodes. A success in between resets the count."""
        if job.kind is not JobKind.RENDER:
            return
        if job.status is JobStatus.FAILED and job.result.get("node_fault"):
            self._node_faults += 1
            if self._node_faults >= MAX_NODE_FAULTS_IN_A_ROW and not self.blocked:
                self.blocked = True
                log.error("%d renders in a row failed on this node (last: %s); it takes no more renders until "
                          "restarted", self._node_faults, job.error, extra={"job_id": job.id})
        elif job.status is JobStatus.DONE:
            self._node_faults = 0

    def _confirm_parked(self) -> None:
        with self._lock:
            parked = list(self._parked.values())
        for job in parked:
            try:
                if self.store.pending_writes(job.id):
                    continue  # still buffered: the replay comes first
            except Exception:
                return
            try:
                row = self.store.get(job.id)
            except Exception:
                return  # still down
            if row is not None and row.status is job.status and row.attempts == job.attempts \
                    and row.lease_owner == job.lease_owner:
                with self._lock:
                    self._parked.pop(job.id, None)
                self.jobs_done += 1
                self.outcomes[job.id] = job.status.value
                self.pipeline.announce_final(job)
            elif row is not None and row.status in LIVE_STATUSES and row.attempts == job.attempts \
                    and row.lease_owner == job.lease_owner:
                # Never reached the database (the outbox could not take it): write it now.
                written = self.store.transition(job.lease, "final", job, job.status)
                if written is Fenced.APPLIED:
                    with self._lock:
                        self._parked.pop(job.id, None)
                    self.jobs_done += 1
                    self.outcomes[job.id] = job.status.value
                    self.pipeline.announce_final(job)
                elif written is Fenced.LOST:
                    with self._lock:
                        self._parked.pop(job.id, None)
                    self.outcomes[job.id] = "lost"
            else:
                with self._lock:
                    self._parked.pop(job.id, None)
                self.outcomes[job.id] = "lost"
                log.warning("final state of job %s was not kept (another node took it over); "
                            "its result is dropped", job.id, extra={"job_id": job.id})

    def _hand_back(self, job: Job) -> None:
        """Give a job this node will not finish back to the queue, at no cost to its attempts."""
        try:
            written = self.pipeline.release(job)
        except Exception:
            log.exception("could not hand job %s back", job.id)
            written = Fenced.FAILED
        if written is Fenced.APPLIED:
            log.info("job handed back to the queue", extra={"job_id": job.id})
        self._release(job.id, "released")

    def _drop(self, job: Job, why: str) -> None:
        log.warning("%s", why, extra={"job_id": job.id})
        self._release(job.id, "lost")

    def _flag(self, job_id: str, name: str) -> bool:
        with self._lock:
            held = self._held.get(job_id)
            return bool(held is not None and getattr(held, name))

    def _flush_buffered_records(self) -> None:
        """Writes buffered while the database was down go in before this node sweeps leases:
        else its own finished jobs, still "running" in the table, would be requeued."""
        try:
            flushed = self.store.flush_outbox()
            if flushed:
                log.info("wrote %d record(s) buffered during a database outage", flushed)
        except Exception as exc:
            log.debug("database still unavailable: %s", exc)

    def _retry_uploads(self) -> None:
        """Send uploads queued during an object-storage outage, on the I/O pool (network)."""
        output_store = self.pipeline.deps.output_store
        if output_store is None or (self._upload_retry is not None and not self._upload_retry.done()):
            return
        retry = output_store.retry_pending

        def run() -> None:
            try:
                sent = retry()
                if sent:
                    log.info("uploaded %d queued output(s) to object storage", sent)
            except Exception:
                log.warning("retrying queued uploads failed; will try again", exc_info=True)

        self._upload_retry = self.io.submit(run)

    def _release(self, job_id: str, outcome: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)
        if outcome:
            self.outcomes[job_id] = outcome
        self._wake.set()

    def wait_for_work(self, timeout_s: float) -> None:
        """Sleep until the I/O pool has something for the main thread (a job ready to render,
        a job settled, a claim pass done) or `timeout_s` passed. Headless loops only."""
        self._wake.wait(timeout_s)
        self._wake.clear()

    # ------------------------------------------------------------------ heartbeat thread
    def _heartbeat_loop(self, interval: float) -> None:
        # Runs until shutdown; a dead heartbeat would let other nodes steal live jobs,
        # so every error is caught and logged.
        self._write_node_row()
        while not self._stop.wait(interval):
            with self._lock:
                held = list(self._held.values())
            for h in held:
                try:
                    self._beat(h)
                except BaseException:
                    log.exception("lease renewal failed", extra={"job_id": h.lease.job_id})
            self._write_node_row()

    def _write_node_row(self, state: str = "") -> None:
        """This node's row in the registry: what it is doing now (heartbeat thread)."""
        info = self.node_info
        if info is None:
            return
        with self._lock:
            rendering = any(h.kind is JobKind.RENDER for h in self._held.values())
        info.state = state or ("draining" if self.stopping else "rendering" if rendering
                               else "blocked" if self.blocked else "idle")
        info.current_job = self.current_job_id
        info.jobs_done = self.jobs_done
        info.jobs_failed = sum(1 for outcome in list(self.outcomes.values()) if outcome == "failed")
        info.last_heartbeat = time.time()
        try:
            self.store.upsert_node(info)
        except Exception as exc:  # the registry is for people; the work goes on
            log.debug("could not write the node registry: %s", exc)

    def _beat(self, h: _Held) -> None:
        renewal = self.store.renew_lease(h.lease, self.lease_s)
        if renewal is Renewal.LOST:
            if not h.lost:
                log.warning("lease lost: another node holds the job now; stopping here",
                            extra={"job_id": h.lease.job_id})
            h.lost = True
            return
        if renewal is Renewal.CANCEL:
            h.cancel = True
        progress = h.progress
        if progress and progress != h.progress_written:
            carrier = Job(kind=JobKind.RENDER, request_text="", id=h.lease.job_id, progress=progress)
            if self.store.transition(h.lease, "progress", carrier) is Fenced.APPLIED:
                h.progress_written = progress


def run_headless(dispatcher: Dispatcher, stop: threading.Event, *, until: Callable[[], bool] | None = None,
                 idle_exit_s: float = 0.0, budget_s: float = 0.2, idle_sleep_s: float = 0.05,
                 grace_s: float | None = None) -> None:
    """The headless driver: the same `drain` the Blender timer calls, in a blocking loop on
    the main thread, with the heartbeat running beside it.

    Ends when `until()` is true, when nothing happened for `idle_exit_s` (0: never), or after
    `stop` is set and the node has finished or handed back what it held (a running render gets
    `grace_s`, default the dispatcher's `stop_grace_s`)."""
    idle_since = time.monotonic()
    while True:
        if stop.is_set() and not dispatcher.stopping:
            dispatcher.begin_stop(grace_s)
        done = dispatcher.drain(budget_s)
        if until is not None and until():
            return
        if dispatcher.stopping and dispatcher.idle():
            return
        if not dispatcher.idle():
            idle_since = time.monotonic()
        elif idle_exit_s and time.monotonic() - idle_since >= idle_exit_s:
            return
        if not done:
            # Woken as soon as the pool has something (a claim, a prepared job, a finish);
            # a signal handler's `stop` is seen within idle_sleep_s.
            dispatcher.wait_for_work(idle_sleep_s)


def run_one_job(pipeline: JobPipeline, job: Job, *, stop: threading.Event | None = None,
                **dispatcher_kwargs: Any) -> Job:
    """Submit one job and drive it through a dispatcher of its own until this node is done
    with it; returns the job's row. The CLI's `render`/`analyze` and the tests use it.

    It claims only this job (on a shared database a one-shot run never takes other people's
    jobs) and runs the same loop and heartbeat as `serve` and the farm workers. If `stop` is
    set (Ctrl-C), the render stops and the job is cancelled. Bad input raises UserError."""
    stop = stop or threading.Event()
    job = pipeline.submit(job)
    if job.status.is_final:  # no node can run it (capability routing): the reason is its error
        return job
    dispatcher = Dispatcher(pipeline, claim_only={job.id}, **dispatcher_kwargs)
    try:
        run_headless(dispatcher, stop, until=lambda: dispatcher.settled(job.id), grace_s=0.0)
    finally:
        dispatcher.shutdown()
    outcome = dispatcher.outcomes.get(job.id, "")
    if outcome in ("", "released"):
        pipeline.deps.store.request_cancel(job.id)
    final = pipeline.deps.store.get(job.id)
    if final is None:
        raise RuntimeError(f"job {job.id} disappeared from the job table")
    if outcome in ("lost", "taken"):
        final.warnings.append("another node took this job over; its result is that node's")
    if final.status is JobStatus.FAILED and final.result.get("bad_input"):
        raise UserError(final.error)
    return final


def track(future: Future[Any]) -> None:
    """Log exceptions of fire-and-forget futures."""
    def done(f: Future[Any]) -> None:
        exc = f.exception()
        if exc is not None:
            log.error("background task failed: %s", exc)
    future.add_done_callback(done)
