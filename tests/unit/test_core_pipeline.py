"""The pipeline and the dispatcher, with a stand-in renderer (no bpy) that writes real PNGs."""

import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from slack_ai_addon.core.dispatcher import Dispatcher, run_headless, run_one_job
from slack_ai_addon.core.jobs import Job, JobKind, JobOutput, JobStatus, Requester
from slack_ai_addon.core.pipeline import (
    Interpretation,
    JobEvent,
    JobPipeline,
    PipelineDeps,
    RenderProgress,
    RenderResult,
    StorageUnavailable,
    UserError,
)
from slack_ai_addon.core.scene_spec import ObjectSpec, Primitive, SceneSpec, SpecError
from tests.job_store import temp_job_store


class FixedInterpreter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, SceneSpec | None]] = []

    def interpret(self, text: str, *, previous: SceneSpec | None = None, correlation_id: str = "") -> Interpretation:
        self.calls.append((text, previous))
        if "nonsense" in text:
            raise SpecError("I could not find anything to render")
        spec = previous.model_copy(deep=True) if previous else SceneSpec(objects=[ObjectSpec(primitive=Primitive.CUBE)])
        if "spin" in text:
            spec.animation.kind = "spin"  # type: ignore[assignment]
            spec.animation.frames = 5
        return Interpretation(spec=spec, provider="stub", not_understood=["zorblax"] if "zorblax" in text else [])


class PngRenderer:
    """Writes one PNG per frame; checks should_stop between frames like the real one."""

    def __init__(self, frame_delay: float = 0.0) -> None:
        self.frame_delay = frame_delay
        self.threads: list[str] = []

    def render(self, spec: SceneSpec, out_dir: Path, *, job_id: str, progress, should_stop) -> RenderResult:  # type: ignore[no-untyped-def]
        self.threads.append(threading.current_thread().name)
        frames = spec.animation.frames if spec.is_animation else 1
        start = time.perf_counter()
        for i in range(1, frames + 1):
            reason = should_stop()
            if reason:
                return RenderResult(outputs=[], frames=i - 1, stopped=reason)
            time.sleep(self.frame_delay)
            progress(RenderProgress("rendering", i, frames, time.perf_counter() - start))
        path = out_dir / "image.png"
        Image.new("RGB", (8, 6), (200, 10, 10)).save(path)
        return RenderResult(outputs=[JobOutput("image", str(path), "image/png", path.stat().st_size)],
                            frames=frames, timings={"render_s": time.perf_counter() - start})

    def render_steps(self, spec, out_dir, **kwargs):  # type: ignore[no-untyped-def]
        """The whole render as one step (the pipeline drives renderers stepwise)."""
        yield
        return self.render(spec, out_dir, **kwargs)


class Events:
    def __init__(self) -> None:
        self.events: list[JobEvent] = []

    def on_job_event(self, event: JobEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def _pipeline(tmp_path: Path, renderer: PngRenderer | None = None, **kw):  # type: ignore[no-untyped-def]
    events = Events()
    kw.setdefault("drafts", False)  # these tests count renders; drafts: tests/blender/test_draft_final.py
    deps = PipelineDeps(store=temp_job_store(), interpreter=FixedInterpreter(), output_dir=tmp_path,
                        node_id="test-node", renderer=renderer or PngRenderer(), listeners=[events], **kw)
    return JobPipeline(deps), events


def _wait_idle(disp: Dispatcher, timeout_s: float) -> bool:
    stop = threading.Event()
    threading.Timer(timeout_s, stop.set).start()
    run_headless(disp, stop, until=disp.idle, budget_s=0.05, grace_s=0.0)
    return not stop.is_set()


def test_one_job_renders_writes_spec_and_records(tmp_path: Path) -> None:
    pipe, events = _pipeline(tmp_path)
    job = run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="a cube zorblax"))
    assert job.status is JobStatus.DONE
    roles = {o.role: Path(o.path) for o in job.outputs}
    assert Image.open(roles["image"]).getpixel((1, 1)) == (200, 10, 10)
    assert '"primitive": "cube"' in roles["spec"].read_text()
    assert events.kinds()[0] == "queued" and events.kinds()[1] == "started" and events.kinds()[-1] == "done"
    stored = pipe.deps.store.get(job.id)
    assert stored is not None and stored.status is JobStatus.DONE and stored.lease_owner == "test-node"
    assert stored.result["provider"] == "stub" and stored.result["not_understood"] == ["zorblax"]
    assert {"interpret_s", "render_total_s", "render_s"} <= set(stored.timings)


def test_bad_input_is_a_user_error_and_the_job_is_recorded_failed(tmp_path: Path) -> None:
    pipe, events = _pipeline(tmp_path)
    with pytest.raises(UserError):
        run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="   "))
    with pytest.raises(UserError, match="could not find"):
        run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="nonsense"))
    failed = pipe.deps.store.list_jobs(statuses=(JobStatus.FAILED,))
    assert len(failed) == 1 and "could not find" in failed[0].error
    assert events.kinds()[-1] == "failed"


def test_engine_option_and_bad_engine(tmp_path: Path) -> None:
    pipe, _ = _pipeline(tmp_path)
    job = run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="cube", options={"engine": "workbench"}))
    assert job.spec is not None and job.spec["output"]["engine"] == "workbench"
    with pytest.raises(UserError, match="unknown engine"):
        run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="cube", options={"engine": "povray"}))


def test_huge_request_is_truncated_with_a_note(tmp_path: Path) -> None:
    pipe, _ = _pipeline(tmp_path)
    job = run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="cube " * 5000))
    assert job.status is JobStatus.DONE
    assert len(job.request_text) <= 4000 and any("characters" in w for w in job.warnings)


def test_follow_up_edit_passes_previous_spec(tmp_path: Path) -> None:
    pipe, _ = _pipeline(tmp_path)
    first = run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="cube"))
    edit = Job(kind=JobKind.RENDER, request_text="make it spin", spec=first.spec, parent_job_id=first.id)
    second = run_one_job(pipe, edit)
    interp = pipe.deps.interpreter
    assert isinstance(interp, FixedInterpreter)
    assert interp.calls[-1][1] is not None  # previous spec given to the interpreter
    assert second.spec is not None and second.spec["animation"]["kind"] == "spin"


class FlakyStorage:
    def store(self, job: Job, outputs: list[JobOutput]) -> list[JobOutput]:
        raise StorageUnavailable("connection refused")

    def retry_pending(self) -> int:
        return 0

    def add_upload_listener(self, listener: object) -> None:
        pass

    def close(self) -> None:
        pass


def test_storage_outage_keeps_local_outputs_and_finishes(tmp_path: Path) -> None:
    pipe, _ = _pipeline(tmp_path, output_store=FlakyStorage())
    job = run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="cube"))
    assert job.status is JobStatus.DONE
    assert any("upload queued" in w for w in job.warnings)
    assert all(Path(o.path).exists() for o in job.outputs)


def test_dispatcher_renders_on_the_draining_thread_and_prepares_elsewhere(tmp_path: Path) -> None:
    renderer = PngRenderer()
    pipe, events = _pipeline(tmp_path, renderer=renderer)
    disp = Dispatcher(pipe, heartbeat_s=0.05)
    try:
        jobs = [pipe.submit(Job(kind=JobKind.RENDER, request_text=f"cube {i}",
                                requester=Requester(user_id="U1"))) for i in range(3)]
        assert _wait_idle(disp, 10)
        assert renderer.threads == [threading.current_thread().name] * 3
        for j in jobs:
            got = pipe.deps.store.get(j.id)
            assert got is not None and got.status is JobStatus.DONE
        assert events.kinds().count("done") == 3
    finally:
        disp.shutdown()


def test_dispatcher_cancel_stops_between_frames(tmp_path: Path) -> None:
    renderer = PngRenderer(frame_delay=0.05)
    pipe, events = _pipeline(tmp_path, renderer=renderer)
    disp = Dispatcher(pipe, heartbeat_s=0.02)
    try:
        job = pipe.submit(Job(kind=JobKind.RENDER, request_text="spin"))
        job_id = job.id

        def cancel_soon() -> None:
            # Once it renders (a busy machine may take a while to claim it): a running job
            # is stopped between frames; a queued one would be cancelled in the table alone.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                row = pipe.deps.store.get(job_id)
                if row is not None and row.status is JobStatus.RUNNING:
                    break
                time.sleep(0.01)
            time.sleep(0.05)
            pipe.deps.store.request_cancel(job_id)

        threading.Thread(target=cancel_soon, daemon=True).start()
        # 5 frames x 50 ms; the spec asks for 5 frames: cancel lands after ~2 frames
        assert _wait_idle(disp, 10)
        final = pipe.deps.store.get(job_id)
        assert final is not None and final.status is JobStatus.CANCELLED
        assert "cancelled" in events.kinds()
    finally:
        disp.shutdown()


def test_dispatcher_survives_a_raising_renderer(tmp_path: Path) -> None:
    class Boom(PngRenderer):
        def render(self, *a, **k):  # type: ignore[no-untyped-def]
            raise RuntimeError("GPU on fire")

    pipe, events = _pipeline(tmp_path, renderer=Boom())
    disp = Dispatcher(pipe)
    try:
        job = pipe.submit(Job(kind=JobKind.RENDER, request_text="cube"))
        assert _wait_idle(disp, 5)
        final = pipe.deps.store.get(job.id)
        assert final is not None and final.status is JobStatus.FAILED and "GPU on fire" in final.error
        assert events.kinds()[-1] == "failed"
    finally:
        disp.shutdown()


def test_dispatcher_retries_queued_uploads_off_the_draining_thread(tmp_path: Path) -> None:
    class QueuedUploads:
        def __init__(self) -> None:
            self.threads: list[str] = []

        def store(self, job: Job, outputs: list[JobOutput]) -> list[JobOutput]:
            return outputs

        def retry_pending(self) -> int:
            self.threads.append(threading.current_thread().name)
            return 1

        def add_upload_listener(self, listener: object) -> None:
            pass

        def close(self) -> None:
            pass

    uploads = QueuedUploads()
    pipe, _ = _pipeline(tmp_path, output_store=uploads)
    disp = Dispatcher(pipe)
    try:
        disp.drain(0.01)
        deadline = time.monotonic() + 5
        while not uploads.threads and time.monotonic() < deadline:
            time.sleep(0.01)
        assert uploads.threads and uploads.threads[0].startswith("slackai-io")
        disp.drain(0.01)  # within the retry interval: not again
        time.sleep(0.1)
        assert len(uploads.threads) == 1
    finally:
        disp.shutdown()


class SteppedRenderer(PngRenderer):
    """Yields between frames like the real renderer's render_steps."""

    def __init__(self) -> None:
        super().__init__()
        self.cleaned_up = 0
        self.frames_done = 0

    def render_steps(self, spec: SceneSpec, out_dir: Path, *, job_id: str, progress, should_stop):  # type: ignore[no-untyped-def]
        try:
            frames = spec.animation.frames if spec.is_animation else 1
            for i in range(1, frames + 1):
                reason = should_stop()
                if reason:
                    return RenderResult(outputs=[], frames=i - 1, stopped=reason)
                progress(RenderProgress("rendering", i, frames, 0.0))
                self.frames_done = i
                yield
            path = out_dir / "image.png"
            Image.new("RGB", (8, 6), (10, 10, 200)).save(path)
            return RenderResult(outputs=[JobOutput("image", str(path), "image/png", path.stat().st_size)],
                                frames=frames)
        finally:
            self.cleaned_up += 1


def test_incremental_dispatcher_renders_one_frame_per_drain(tmp_path: Path) -> None:
    renderer = SteppedRenderer()
    pipe, events = _pipeline(tmp_path, renderer=renderer)
    disp = Dispatcher(pipe, incremental=True)
    try:
        job = pipe.submit(Job(kind=JobKind.RENDER, request_text="spin"))  # 5 frames
        per_drain: list[int] = []
        for _ in range(200):
            before = renderer.frames_done
            disp.drain(0.0)  # a zero budget still advances the active render by one step
            per_drain.append(renderer.frames_done - before)
            if disp.idle():
                break
            time.sleep(0.01)
        final = pipe.deps.store.get(job.id)
        assert final is not None and final.status is JobStatus.DONE
        assert renderer.cleaned_up == 1 and renderer.frames_done == 5
        # Each drain call advanced at most one frame: the timer returned to Blender in between.
        assert max(per_drain) == 1 and sum(per_drain) == 5
        assert disp.current_job_id == ""
        assert events.kinds()[-1] == "done"
    finally:
        disp.shutdown()


def test_incremental_render_interrupted_by_shutdown_cleans_up_and_hands_the_job_back(tmp_path: Path) -> None:
    renderer = SteppedRenderer()
    pipe, events = _pipeline(tmp_path, renderer=renderer)
    disp = Dispatcher(pipe, incremental=True)
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="spin"))
    for _ in range(200):
        disp.drain(0.0)
        if disp.current_job_id:
            break
        time.sleep(0.01)
    assert disp.current_job_id == job.id
    disp.shutdown()
    final = pipe.deps.store.get(job.id)
    # Nothing lost: the job is back in the queue for the next node, no failure counted.
    assert final is not None and final.status is JobStatus.QUEUED and final.lease_owner == ""
    assert final.failed_nodes == [] and final.attempts == 1
    assert renderer.cleaned_up == 1
    assert "failed" not in events.kinds() and "done" not in events.kinds()


def test_claim_only_takes_just_the_listed_jobs(tmp_path: Path) -> None:
    pipe, _ = _pipeline(tmp_path)
    theirs = pipe.submit(Job(kind=JobKind.RENDER, request_text="somebody else's cube"))
    mine = pipe.submit(Job(kind=JobKind.RENDER, request_text="my cube"))
    own = {mine.id}
    disp = Dispatcher(pipe, claim_only=own)
    try:
        assert _wait_idle(disp, 10)
        got_mine, got_theirs = pipe.deps.store.get(mine.id), pipe.deps.store.get(theirs.id)
        assert got_mine is not None and got_mine.status is JobStatus.DONE
        assert got_theirs is not None and got_theirs.status is JobStatus.QUEUED and got_theirs.attempts == 0
        assert own == set()
    finally:
        disp.shutdown()


def test_main_thread_never_waits_on_a_slow_database(tmp_path: Path) -> None:
    """A database that takes 1 s per call (SQL Server across a bad link): the GUI driver's
    drain stays within its budget plus one render step, and the job still finishes."""

    class SlowSteps(SteppedRenderer):
        def render_steps(self, spec, out_dir, *, job_id, progress, should_stop):  # type: ignore[no-untyped-def]
            def slow_progress(p: RenderProgress) -> None:
                time.sleep(0.03)  # one render step's work
                progress(p)
            return (yield from super().render_steps(spec, out_dir, job_id=job_id, progress=slow_progress,
                                                    should_stop=should_stop))

    pipe, events = _pipeline(tmp_path, renderer=SlowSteps())
    store = pipe.deps.store
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="spin"))
    main = threading.current_thread()
    calls_on_main: list[str] = []

    def slow_database() -> None:
        if threading.current_thread() is main:
            calls_on_main.append("db")
        time.sleep(1.0)

    store.fault_hook = slow_database  # type: ignore[attr-defined]
    disp = Dispatcher(pipe, incremental=True, heartbeat_s=0.5)
    budget = 0.05
    longest = 0.0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not disp.settled(job.id):
            start = time.perf_counter()
            disp.drain(budget)
            longest = max(longest, time.perf_counter() - start)
            disp.queue_depth  # what the panel reads: memory only  # noqa: B018
            time.sleep(0.01)
        assert disp.settled(job.id), "the job did not finish"
    finally:
        store.fault_hook = None  # type: ignore[attr-defined]
        disp.shutdown()
    assert calls_on_main == []
    # One render step is ~0.03 s; a drain that waited on the database would take >= 1 s.
    assert longest < budget + 0.03 + 0.15, longest
    final = store.get(job.id)
    assert final is not None and final.status is JobStatus.DONE
    assert events.kinds().count("done") == 1


def test_a_job_that_ran_out_of_nodes_is_announced_once_by_the_sweep(tmp_path: Path) -> None:
    pipe, events = _pipeline(tmp_path)
    store = pipe.deps.store
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="cube"))
    for node in ("a", "b", "c"):  # three nodes took it and died
        assert store.claim_next(node, 0.0) is not None
        if node != "c":
            store.requeue_expired(time.time() + 1)
    time.sleep(0.01)
    disp = Dispatcher(pipe, heartbeat_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "failed" not in events.kinds():
            disp.drain(0.01)
            time.sleep(0.02)
    finally:
        disp.shutdown()
    final = store.get(job.id)
    assert final is not None and final.status is JobStatus.FAILED and "3 nodes" in final.error
    assert events.kinds().count("failed") == 1


def test_a_stopped_headless_loop_ends_once_its_work_is_settled(tmp_path: Path) -> None:
    """SIGTERM on a worker or `serve`: the loop finishes what it holds and returns, even
    though the dispatcher keeps starting housekeeping passes (it once waited for a claim
    pass that a stopping node never makes)."""
    pipe, events = _pipeline(tmp_path, renderer=PngRenderer(frame_delay=0.05))
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="spin"))
    disp = Dispatcher(pipe, heartbeat_s=0.05)
    stop = threading.Event()
    try:
        run_headless(disp, stop, until=lambda: disp.current_job_id == job.id or disp.settled(job.id),
                     budget_s=0.01)
        stop.set()
        started = time.monotonic()
        run_headless(disp, stop, budget_s=0.01, grace_s=30.0)
        assert time.monotonic() - started < 5
    finally:
        disp.shutdown()
    final = pipe.deps.store.get(job.id)
    assert final is not None and final.status in (JobStatus.DONE, JobStatus.QUEUED)


def _drive(disp: Dispatcher, until, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Drain with a zero budget (one render step per call) until `until()`."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "timed out"
        disp.drain(0.0)
        time.sleep(0.005)


def test_a_node_that_lost_its_lease_mid_render_stops_and_says_nothing(tmp_path: Path) -> None:
    renderer = SteppedRenderer()
    pipe, events = _pipeline(tmp_path, renderer=renderer)
    store = pipe.deps.store
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="spin"))  # 5 frames
    disp = Dispatcher(pipe, incremental=True, heartbeat_s=0.05)
    try:
        _drive(disp, lambda: renderer.frames_done >= 1)
        # This node stalls past its lease: another node's sweep requeues the job and claims it.
        assert store.requeue_expired(time.time() + 3600) == [job.id]
        other = store.claim_next("other-node", 60)
        assert other is not None and other.id == job.id
        time.sleep(0.3)  # a few heartbeats (every 0.05 s) before the next frame
        _drive(disp, lambda: disp.settled(job.id))
    finally:
        disp.shutdown()
    assert disp.outcomes[job.id] == "lost"
    assert renderer.frames_done < 5  # the heartbeat saw the lost lease and the render stopped
    assert not {"done", "failed", "cancelled"} & set(events.kinds())  # the new owner answers, not us
    row = store.get(job.id)
    assert row is not None and row.status is JobStatus.CLAIMED and row.lease_owner == "other-node"
    assert disp.jobs_done == 0


def test_a_node_holds_one_render_at_a_time(tmp_path: Path) -> None:
    renderer = SteppedRenderer()
    pipe, _ = _pipeline(tmp_path, renderer=renderer)
    store = pipe.deps.store
    first = pipe.submit(Job(kind=JobKind.RENDER, request_text="spin"))
    second = pipe.submit(Job(kind=JobKind.RENDER, request_text="spin"))
    disp = Dispatcher(pipe, incremental=True, heartbeat_s=0.05, max_in_flight=3)
    seen_while_rendering: list[JobStatus] = []
    try:
        _drive(disp, lambda: disp.current_job_id != "")
        rendering = disp.current_job_id
        waiting_id = second.id if rendering == first.id else first.id
        while disp.current_job_id == rendering:
            time.sleep(0.03)  # claim passes run on the pool between frames
            row = store.get(waiting_id)
            assert row is not None
            seen_while_rendering.append(row.status)
            disp.drain(0.0)
        _drive(disp, lambda: disp.settled(first.id) and disp.settled(second.id))
    finally:
        disp.shutdown()
    # The other job stayed queued (free for any other node) while this one rendered.
    assert len(seen_while_rendering) >= 4 and set(seen_while_rendering) == {JobStatus.QUEUED}


def _database_goes_down_at_finish(pipe: JobPipeline) -> None:
    """The database becomes unreachable just as the job's result is being written."""
    import sqlite3

    store = pipe.deps.store
    original_finish = pipe.finish

    def down() -> None:
        raise sqlite3.OperationalError("unable to open database file (injected)")

    def finish_during_outage(j: Job, result: RenderResult | None = None) -> object:
        store.fault_hook = down  # type: ignore[attr-defined]
        return original_finish(j, result)

    pipe.finish = finish_during_outage  # type: ignore[method-assign]


def test_a_final_write_buffered_during_an_outage_is_announced_once_it_is_confirmed(tmp_path: Path) -> None:

    pipe, events = _pipeline(tmp_path)
    store = pipe.deps.store
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="cube"))
    disp = Dispatcher(pipe, heartbeat_s=0.05)

    _database_goes_down_at_finish(pipe)
    try:
        _drive(disp, lambda: store.outbox.pending())  # type: ignore[attr-defined]
        time.sleep(0.2)
        assert "done" not in events.kinds()  # not confirmed yet: nobody is told
        store.fault_hook = None  # type: ignore[attr-defined]
        _drive(disp, lambda: "done" in events.kinds())
        for _ in range(20):
            disp.drain(0.0)
            time.sleep(0.01)
    finally:
        store.fault_hook = None  # type: ignore[attr-defined]
        disp.shutdown()
    assert events.kinds().count("done") == 1
    row = store.get(job.id)
    assert row is not None and row.status is JobStatus.DONE


def test_a_buffered_final_write_that_lost_its_lease_is_never_announced(tmp_path: Path) -> None:

    pipe, events = _pipeline(tmp_path)
    store = pipe.deps.store
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="cube"))
    disp = Dispatcher(pipe, heartbeat_s=0.05)

    _database_goes_down_at_finish(pipe)
    from slack_ai_addon.storage.db import open_sql_store

    url = store.backend.redacted_url  # type: ignore[attr-defined]
    try:
        _drive(disp, lambda: store.outbox.pending())  # type: ignore[attr-defined]
        # Meanwhile this node's lease runs out and another node takes the job and finishes it.
        node2 = open_sql_store(url, outbox_path=tmp_path / "node2-outbox.jsonl")
        assert node2.requeue_expired(time.time() + 3600) == [job.id]
        taken = node2.claim_next("node-2", 60)
        assert taken is not None
        from slack_ai_addon.core.jobs import Fenced

        assert node2.transition(taken.lease, "final", taken, JobStatus.FAILED) is Fenced.APPLIED
        node2.close()
        store.fault_hook = None  # type: ignore[attr-defined]
        _drive(disp, lambda: disp.settled(job.id), timeout_s=30)
        for _ in range(20):
            disp.drain(0.0)
            time.sleep(0.01)
    finally:
        store.fault_hook = None  # type: ignore[attr-defined]
        disp.shutdown()
    assert disp.outcomes[job.id] == "lost"
    assert "done" not in events.kinds() and "failed" not in events.kinds()
    row = store.get(job.id)
    assert row is not None and row.status is JobStatus.FAILED and row.lease_owner == "node-2"


def test_a_render_that_produces_no_image_fails(tmp_path: Path) -> None:
    class Empty(PngRenderer):
        def render(self, *a, **k):  # type: ignore[no-untyped-def]
            return RenderResult(outputs=[], frames=1)

    pipe, events = _pipeline(tmp_path, renderer=Empty())
    job = run_one_job(pipe, Job(kind=JobKind.RENDER, request_text="cube"))
    assert job.status is JobStatus.FAILED and "without producing an image" in job.error
    assert events.kinds()[-1] == "failed"


def test_a_node_whose_renders_keep_failing_stops_taking_renders(tmp_path: Path) -> None:
    from slack_ai_addon.core.jobs import NodeInfo

    class Broken(PngRenderer):
        def render(self, *a, **k):  # type: ignore[no-untyped-def]
            raise RuntimeError("GPU driver crashed")

    pipe, events = _pipeline(tmp_path, renderer=Broken())
    store = pipe.deps.store
    jobs = [pipe.submit(Job(kind=JobKind.RENDER, request_text=f"cube {i}")) for i in range(4)]
    analysis = pipe.submit(Job(kind=JobKind.ANALYZE, request_text="fine"))
    disp = Dispatcher(pipe, heartbeat_s=0.05, node_info=NodeInfo(id="test-node", role="worker"))
    try:
        _drive(disp, lambda: all(disp.settled(j.id) for j in jobs[:3]))
        for _ in range(30):  # more claim passes: the fourth render must stay in the queue
            disp.drain(0.0)
            time.sleep(0.01)
        _drive(disp, lambda: (n := store.list_nodes()) and n[0].state == "blocked")
    finally:
        disp.shutdown()
    assert disp.blocked
    assert [store.get(j.id).status for j in jobs] == [JobStatus.FAILED] * 3 + [JobStatus.QUEUED]  # type: ignore[union-attr]
    assert store.get(jobs[3].id).attempts == 0  # type: ignore[union-attr]  # free for a healthy node
    assert store.get(analysis.id).status is not JobStatus.QUEUED  # type: ignore[union-attr]  # analyses still taken
