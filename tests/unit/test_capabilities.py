"""Capability routing over the real SQLite store: what a job requires, what a node offers,
the claim filter in SQL, and the jobs no live node can run (failed at submit or by the sweep,
announced once). Several nodes share one database file through their own store connections."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from slack_ai_addon.core.dispatcher import Dispatcher, run_one_job
from slack_ai_addon.core.jobs import (
    Job,
    JobKind,
    JobRequirements,
    JobStatus,
    NodeCapabilities,
    NodeInfo,
    Requester,
    blender_version_number,
    live_render_nodes,
    unrunnable_reason,
)
from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
from slack_ai_addon.storage.db import open_sql_store
from slack_ai_addon.storage.db.store import SqlJobStore
from tests.unit.test_core_pipeline import Events, FixedInterpreter, PngRenderer

CPU = NodeCapabilities(engines=("cycles", "eevee", "workbench"), gpu="", blender=50200)
GPU = NodeCapabilities(engines=("cycles", "eevee", "workbench"), gpu="RTX 4090 (OPTIX)", blender=50200)
WORKBENCH_ONLY = NodeCapabilities(engines=("workbench",), gpu="", blender=40200, tags=("assets:props",))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


def _store(db: str, tmp_path: Path, name: str) -> SqlJobStore:
    """One node's own store (its own connections and outbox) on the shared database file."""
    return open_sql_store(db, outbox_path=tmp_path / f"{name}-outbox.jsonl")


def _render(text: str = "a cube", **req: object) -> Job:
    return Job(kind=JobKind.RENDER, request_text=text, requirements=JobRequirements(**req))  # type: ignore[arg-type]


def _node(node_id: str, caps: NodeCapabilities, *, beat: float | None = None, state: str = "idle") -> NodeInfo:
    return NodeInfo(id=node_id, role="worker", engines=",".join(caps.engines), gpu=caps.gpu,
                    blender_version="5.2.0" if caps.blender >= 50200 else "4.2.0", tags=list(caps.tags),
                    last_heartbeat=time.time() if beat is None else beat, state=state)


# ---------------------------------------------------------------- requirements and capabilities

def test_versions_are_compared_as_numbers() -> None:
    assert blender_version_number("4.2") == 40200
    assert blender_version_number("5.0.1") == 50001
    assert blender_version_number("4.10") > blender_version_number("4.9")
    assert blender_version_number("") == 0 and blender_version_number("none") == 0


def test_a_job_requires_what_it_chose_and_what_the_admin_requires() -> None:
    text = Job(kind=JobKind.RENDER, request_text="a cube in eevee")
    assert JobRequirements.of_job(text).empty  # the text is interpreted on the node: no engine yet
    flagged = Job(kind=JobKind.RENDER, request_text="a cube", options={"engine": "EEVEE", "gpu": True,
                                                                         "tags": "assets:props, Lookdev"})
    assert JobRequirements.of_job(flagged) == JobRequirements(engine="eevee", gpu=True,
                                                               tags=("assets:props", "lookdev"))
    fixed = Job(kind=JobKind.RENDER, request_text="", spec={"output": {"engine": "workbench"}})
    assert JobRequirements.of_job(fixed).engine == "workbench"  # a finished spec names its engine
    assert JobRequirements.of_job(Job(kind=JobKind.ANALYZE, request_text="hi", options={"gpu": True})).empty
    admin = JobRequirements.from_settings("cycles", True, "4.2")
    merged = JobRequirements.of_job(flagged).merged(admin)
    assert merged == JobRequirements(engine="cycles", gpu=True, blender=40200, tags=("assets:props", "lookdev"))


def test_the_reason_names_what_no_live_node_offers() -> None:
    assert unrunnable_reason(JobRequirements(gpu=True), [CPU, GPU]) == ""
    why = unrunnable_reason(JobRequirements(gpu=True, engine="cycles"), [CPU, CPU])
    assert why == ("No render node can run this job: it needs a GPU node; the farm has 0 live GPU nodes "
                   "(2 live render nodes in all).")  # Cycles is there: not named
    why = unrunnable_reason(JobRequirements(blender=50300, tags=("assets:props", "lookdev")), [GPU, WORKBENCH_ONLY])
    assert "it needs Blender 5.3 or newer; no live node runs it" in why
    assert "it needs the tag lookdev; no live node carries it" in why and "assets:props" not in why
    # Each requirement is met somewhere, but not all of them on one node.
    why = unrunnable_reason(JobRequirements(gpu=True, tags=("assets:props",)), [GPU, WORKBENCH_ONLY])
    assert why.endswith("it needs a GPU, tag assets:props, and no live node has all of these at once "
                        "(2 live render nodes in all).")
    assert "0 live GPU nodes" in unrunnable_reason(JobRequirements(gpu=True), [])  # an empty farm


def test_only_live_render_nodes_count(db: str, tmp_path: Path) -> None:
    store = _store(db, tmp_path, "reader")
    now = time.time()
    store.upsert_node(_node("gpu-live", GPU))
    store.upsert_node(_node("gpu-stale", GPU, beat=now - 120))  # no heartbeat for two minutes
    store.upsert_node(_node("gpu-blocked", GPU, state="blocked"))
    store.upsert_node(_node("gpu-draining", GPU, state="draining"))
    store.upsert_node(NodeInfo(id="listener", role="listener", last_heartbeat=now))  # renders nothing
    store.upsert_node(_node("props", WORKBENCH_ONLY))
    nodes = store.list_nodes()
    assert {n.id: n.tags for n in nodes}["props"] == ["assets:props"]  # the tags column round-trips
    assert sorted(c.gpu for c in live_render_nodes(nodes, now)) == ["", GPU.gpu]
    store.close()


# ---------------------------------------------------------------- the claim filter, two nodes on one file

def test_a_gpu_job_is_not_claimed_by_a_cpu_node_but_by_a_gpu_node(db: str, tmp_path: Path) -> None:
    cpu, gpu = _store(db, tmp_path, "cpu"), _store(db, tmp_path, "gpu")
    job = cpu.add(_render(gpu=True))
    assert cpu.claim_next("cpu-node", 60, None, CPU) is None
    assert cpu.get(job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    claimed = gpu.claim_next("gpu-node", 60, None, GPU)
    assert claimed is not None and claimed.id == job.id and claimed.lease_owner == "gpu-node"
    assert claimed.requirements == JobRequirements(gpu=True) and claimed.claimed_at > 0
    cpu.close()
    gpu.close()


def test_engine_version_and_tags_filter_claims(db: str, tmp_path: Path) -> None:
    a, b = _store(db, tmp_path, "a"), _store(db, tmp_path, "b")
    eevee = a.add(_render("eevee", engine="eevee"))
    new_blender = a.add(_render("5.2", blender=50200))
    props = a.add(_render("props", tags=("assets:props",)))
    both_tags = a.add(_render("two tags", tags=("assets:props", "lookdev")))
    plain = a.add(_render("anything"))
    seen = []
    while (job := a.claim_next("workbench-4.2", 60, None, WORKBENCH_ONLY)) is not None:
        seen.append(job.id)
    assert sorted(seen) == sorted([props.id, plain.id])  # neither EEVEE, 5.2 nor a tag it lacks
    taken = []
    while (job := b.claim_next("gpu-5.2", 60, None, GPU)) is not None:
        taken.append(job.id)
    assert sorted(taken) == sorted([eevee.id, new_blender.id])
    assert a.get(both_tags.id).status is JobStatus.QUEUED  # type: ignore[union-attr]  # nobody has both
    a.close()
    b.close()


def test_rows_from_before_migration_6_need_nothing(db: str, tmp_path: Path) -> None:
    store = _store(db, tmp_path, "n")
    conn = sqlite3.connect(db.removeprefix("sqlite:///"))
    conn.execute("INSERT INTO jobs (id, kind, status, request_text, attempts, failed_nodes, lease_expires_at, "
                 "cancel_requested, created_at, updated_at, user_id) "
                 "VALUES ('old-1', 'render', 'queued', 'a cube', 0, '[]', 0, 0, 1, 1, 'U1')")
    conn.commit()
    conn.close()
    old = store.get("old-1")
    assert old is not None and old.requirements.empty and old.claimed_at == 0.0
    assert store.claim_next("cpu", 60, None, WORKBENCH_ONLY).id == "old-1"  # type: ignore[union-attr]
    store.close()


def test_a_node_never_gets_back_a_job_it_failed(db: str, tmp_path: Path) -> None:
    n1, n2 = _store(db, tmp_path, "n1"), _store(db, tmp_path, "n2")
    job = n1.add(_render(gpu=True))
    assert n1.claim_next("n1", 0.0, None, GPU) is not None  # a lease that is already over
    assert n2.requeue_expired(time.time() + 1) == [job.id]
    assert n1.get(job.id).failed_nodes == ["n1"]  # type: ignore[union-attr]
    assert n1.claim_next("n1", 60, None, GPU) is None
    assert n1.claim_next("n1", 60) is None  # with or without the capability filter
    again = n2.claim_next("n2", 60, None, GPU)
    assert again is not None and again.id == job.id and again.attempts == 2
    n1.close()
    n2.close()


# ---------------------------------------------------------------- nobody can run it

def _pipeline(tmp_path: Path, store: SqlJobStore, node_id: str, caps: NodeCapabilities | None, *,
              required: JobRequirements | None = None, renders: bool = True) -> tuple[JobPipeline, Events]:
    events = Events()
    deps = PipelineDeps(store=store, interpreter=FixedInterpreter(), output_dir=tmp_path / node_id, node_id=node_id,
                        renderer=PngRenderer() if renders else None, listeners=[events], capabilities=caps,
                        required=required or JobRequirements())
    return JobPipeline(deps), events


def test_a_job_no_node_can_run_fails_at_submit_with_the_reason(db: str, tmp_path: Path) -> None:
    store = _store(db, tmp_path, "listener")
    pipe, events = _pipeline(tmp_path, store, "listener", None, renders=False,
                             required=JobRequirements.from_settings(require_gpu=True))
    store.upsert_node(_node("cpu-1", CPU))
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="a cube", requester=Requester(user_id="U1")))
    row = store.get(job.id)
    assert row is not None and row.status is JobStatus.FAILED and row.requirements.gpu
    assert "needs a GPU node; the farm has 0 live GPU nodes" in row.error
    assert events.kinds() == ["failed"]  # one final event, no "queued" before it
    assert events.events[0].message == row.error
    # A live GPU node in the registry: the same request queues.
    store.upsert_node(_node("gpu-1", GPU))
    queued = pipe.submit(Job(kind=JobKind.RENDER, request_text="a cube"))
    assert store.get(queued.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    # Analyses need no render node at all.
    store.upsert_node(_node("gpu-1", GPU, beat=time.time() - 300))
    analysis = pipe.submit(Job(kind=JobKind.ANALYZE, request_text="nice"))
    assert store.get(analysis.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    store.close()


def test_with_no_live_render_node_at_all_the_job_waits_for_the_first(db: str, tmp_path: Path) -> None:
    """A listener started before its workers (or a farm restarting) queues as usual; the first
    worker's sweep decides."""
    store = _store(db, tmp_path, "listener")
    pipe, events = _pipeline(tmp_path, store, "listener", None, renders=False,
                             required=JobRequirements.from_settings(require_gpu=True))
    store.upsert_node(_node("gpu-old", GPU, beat=time.time() - 600))
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="a cube"))
    assert store.get(job.id).status is JobStatus.QUEUED and events.kinds() == ["queued"]  # type: ignore[union-attr]
    worker, worker_events = _pipeline(tmp_path, _store(db, tmp_path, "cpu-1"), "cpu-1", CPU)
    disp = Dispatcher(worker, heartbeat_s=0.05, node_info=_node("cpu-1", CPU))
    try:
        _drive(disp, lambda: store.get(job.id).status is JobStatus.FAILED)  # type: ignore[union-attr]
    finally:
        disp.shutdown()
    assert "0 live GPU nodes (1 live render node in all)" in store.get(job.id).error  # type: ignore[union-attr]
    assert worker_events.kinds() == ["failed"]


def test_an_admin_engine_is_required_and_rendered_with(db: str, tmp_path: Path) -> None:
    store = _store(db, tmp_path, "n")
    pipe, _ = _pipeline(tmp_path, store, "n", CPU, required=JobRequirements.from_settings(require_engine="workbench"))
    job = pipe.submit(Job(kind=JobKind.RENDER, request_text="a cube", options={"engine": "eevee"}))
    assert job.requirements.engine == "workbench" and job.options["engine"] == "workbench"
    assert any("renders with workbench" in w for w in job.warnings)
    store.close()


def test_a_single_node_counts_itself_as_live(db: str, tmp_path: Path) -> None:
    """The CLI's `render` and the desktop add-on have no registry rows of other nodes."""
    store = _store(db, tmp_path, "solo")
    gpu_pipe, _ = _pipeline(tmp_path, store, "solo", GPU, required=JobRequirements(gpu=True))
    done = run_one_job(gpu_pipe, Job(kind=JobKind.RENDER, request_text="a cube"))
    assert done.status is JobStatus.DONE and done.lease_owner == "solo"
    cpu_pipe, events = _pipeline(tmp_path, store, "solo-cpu", CPU, required=JobRequirements(gpu=True))
    failed = run_one_job(cpu_pipe, Job(kind=JobKind.RENDER, request_text="a cube"))
    assert failed.status is JobStatus.FAILED and "0 live GPU nodes" in failed.error
    assert "(1 live render node in all)" in failed.error and failed.attempts == 0
    assert events.kinds() == ["failed"]
    store.close()


def _drive(disp: Dispatcher, until, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "timed out"
        disp.drain(0.0)
        time.sleep(0.01)


def test_the_sweep_fails_a_job_that_became_unrunnable_and_says_so_once(db: str, tmp_path: Path) -> None:
    listener = _store(db, tmp_path, "listener")
    listener.upsert_node(_node("gpu-1", GPU))
    submit, submit_events = _pipeline(tmp_path, listener, "listener", None, renders=False)
    job = submit.submit(Job(kind=JobKind.RENDER, request_text="a cube", options={"gpu": True}))
    assert listener.get(job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    # The only GPU node stops beating; two CPU workers sweep the queue (every second: lease 2 s).
    listener.upsert_node(_node("gpu-1", GPU, beat=time.time() - 120))
    workers = []
    for name in ("cpu-1", "cpu-2"):
        pipe, events = _pipeline(tmp_path, _store(db, tmp_path, name), name, CPU)
        pipe.deps.lease_s = 2.0
        workers.append((Dispatcher(pipe, heartbeat_s=0.05, node_info=_node(name, CPU)), events))
    try:
        failed_at = None
        deadline = time.monotonic() + 15
        while failed_at is None or time.monotonic() < failed_at + 1.5:  # then both sweep again
            assert time.monotonic() < deadline, "timed out"
            for disp, _ in workers:
                disp.drain(0.0)
            if failed_at is None and listener.get(job.id).status is JobStatus.FAILED:  # type: ignore[union-attr]
                failed_at = time.monotonic()
            time.sleep(0.01)
    finally:
        for disp, _ in workers:
            disp.shutdown()
    row = listener.get(job.id)
    assert row is not None and row.attempts == 0 and row.lease_owner == ""  # never claimed
    assert "needs a GPU node; the farm has 0 live GPU nodes" in row.error
    finals = [e for _, events in workers for e in events.events if e.job.id == job.id]
    assert [e.kind for e in finals] == ["failed"]  # one sweep failed it, and only that one said so
    assert [e.kind for e in submit_events.events if e.job.id == job.id] == ["queued"]


def test_a_blocked_node_leaves_its_jobs_to_a_healthy_node(db: str, tmp_path: Path) -> None:
    class Broken(PngRenderer):
        def render(self, *a, **k):  # type: ignore[no-untyped-def]
            raise RuntimeError("GPU driver crashed")

    broken_pipe, _ = _pipeline(tmp_path, _store(db, tmp_path, "broken"), "broken", GPU)
    broken_pipe.deps.renderer = Broken()
    jobs = [broken_pipe.submit(Job(kind=JobKind.RENDER, request_text=f"cube {i}")) for i in range(5)]
    broken = Dispatcher(broken_pipe, heartbeat_s=0.05, node_info=_node("broken", GPU))
    store = broken_pipe.deps.store
    try:
        _drive(broken, lambda: broken.blocked and (n := store.list_nodes()) and n[0].state == "blocked")
    finally:
        broken.shutdown()
    failed = [j.id for j in jobs if store.get(j.id).status is JobStatus.FAILED]  # type: ignore[union-attr]
    assert len(failed) == 3
    healthy_pipe, events = _pipeline(tmp_path, _store(db, tmp_path, "healthy"), "healthy", GPU)
    healthy = Dispatcher(healthy_pipe, heartbeat_s=0.05, node_info=_node("healthy", GPU))
    try:
        _drive(healthy, lambda: all(store.get(j.id).status.is_final for j in jobs))  # type: ignore[union-attr]
    finally:
        healthy.shutdown()
    rest = [store.get(j.id) for j in jobs if j.id not in failed]
    assert [(r.status, r.lease_owner) for r in rest] == [(JobStatus.DONE, "healthy")] * 2  # type: ignore[union-attr]


class EeveeInterpreter(FixedInterpreter):
    """Chooses EEVEE when the text asks for it, as the real interpreters do."""

    def interpret(self, text, *, previous=None, correlation_id=""):  # type: ignore[no-untyped-def]
        interp = super().interpret(text, previous=previous, correlation_id=correlation_id)
        if "eevee" in text:
            interp.spec.output.engine = "eevee"  # type: ignore[assignment]
        return interp


def test_an_engine_chosen_by_the_text_goes_to_a_node_that_has_it(db: str, tmp_path: Path) -> None:
    no_eevee = NodeCapabilities(engines=("cycles", "workbench"), blender=50200)
    store = _store(db, tmp_path, "reader")
    store.upsert_node(_node("full", CPU))  # a live node with EEVEE: the job is not unrunnable
    lacking, lacking_events = _pipeline(tmp_path, _store(db, tmp_path, "lacking"), "lacking", no_eevee)
    lacking.deps.interpreter = EeveeInterpreter()
    job = lacking.submit(Job(kind=JobKind.RENDER, request_text="a cube in eevee"))
    assert job.requirements.empty  # the text names its engine only once interpreted
    disp = Dispatcher(lacking, heartbeat_s=0.05, node_info=_node("lacking", no_eevee))
    try:
        _drive(disp, lambda: (r := store.get(job.id)) is not None and r.requirements.engine == "eevee"
               and r.status is JobStatus.QUEUED)
        for _ in range(20):  # it does not take the job again
            disp.drain(0.0)
            time.sleep(0.01)
        assert store.get(job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    finally:
        disp.shutdown()
    assert disp.pipeline.deps.renderer.threads == []  # type: ignore[union-attr]  # nothing rendered there
    full, events = _pipeline(tmp_path, _store(db, tmp_path, "full"), "full", CPU)
    full.deps.interpreter = EeveeInterpreter()
    other = Dispatcher(full, heartbeat_s=0.05, node_info=_node("full", CPU))
    try:
        _drive(other, lambda: store.get(job.id).status.is_final)  # type: ignore[union-attr]
    finally:
        other.shutdown()
    row = store.get(job.id)
    assert row is not None and row.status is JobStatus.DONE and row.lease_owner == "full"
    assert row.spec["output"]["engine"] == "eevee" and row.attempts == 2  # type: ignore[index]
    assert "failed" not in lacking_events.kinds() and events.kinds()[-1] == "done"


def test_the_sweep_fails_only_jobs_still_queued(db: str, tmp_path: Path) -> None:
    """Between the sweep's read and its update another node may claim (or someone cancel) the
    job: the guarded update leaves it alone and reports that it did nothing."""
    sweeper, gpu = _store(db, tmp_path, "sweeper"), _store(db, tmp_path, "gpu")
    claimed, cancelled, waiting = (sweeper.add(_render(f"job {i}", gpu=True)) for i in range(3))
    listed = dict(sweeper.queued_requirements())
    assert set(listed) == {claimed.id, cancelled.id, waiting.id} and listed[waiting.id] == JobRequirements(gpu=True)
    assert gpu.claim(claimed.id, "gpu-node", 60) is not None
    sweeper.request_cancel(cancelled.id)
    assert sweeper.fail_queued(claimed.id, "no GPU") is None
    assert sweeper.fail_queued(cancelled.id, "no GPU") is None
    failed = sweeper.fail_queued(waiting.id, "no GPU")
    assert failed is not None and failed.status is JobStatus.FAILED and failed.error == "no GPU"
    assert sweeper.fail_queued(waiting.id, "no GPU") is None  # a second sweep: nothing to announce
    rows = {j: sweeper.get(j) for j in (claimed.id, cancelled.id)}
    assert rows[claimed.id].status is JobStatus.CLAIMED and rows[claimed.id].error == ""  # type: ignore[union-attr]
    assert rows[cancelled.id].status is JobStatus.CANCELLED  # type: ignore[union-attr]
    assert sweeper.queued_requirements() == []
    sweeper.close()
    gpu.close()


def test_the_routing_settings_are_checked_and_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from slack_ai_addon.core.config import ConfigError, load_settings, validate_settings
    from slack_ai_addon.core.config import Settings as S

    with pytest.raises(ConfigError, match="require_blender .*is not a version"):
        validate_settings(S(require_blender="latest"))
    with pytest.raises(ConfigError, match="require_engine"):
        validate_settings(S(require_engine="povray"))
    monkeypatch.setenv("SLACK_AI_REQUIRE_BLENDER", " 4.2 ")
    monkeypatch.setenv("SLACK_AI_REQUIRE_GPU", "yes")
    monkeypatch.setenv("SLACK_AI_REQUIRE_ENGINE", "Cycles")
    settings = load_settings()
    assert JobRequirements.from_settings(settings.require_engine, settings.require_gpu, settings.require_blender) \
        == JobRequirements(engine="cycles", gpu=True, blender=40200)
