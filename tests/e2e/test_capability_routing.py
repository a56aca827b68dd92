"""Capability routing end to end.

- Slack (the local Slack server, the real slack_sdk clients): a /render that no live node can
  run gets one clear reply, recorded by the server, and a failed row; a job that becomes
  unrunnable while it waits (the only GPU node went offline) is failed by the sweep, and its
  placeholder gets the one final message.
- Real processes with the real bpy: the CLI's one-shot `render` on a machine without a GPU
  says why it cannot run a GPU job (exit 1), and renders it when the node is given a GPU;
  two `worker` processes on one SQLite file, one with a GPU and one without, route the GPU
  jobs to the GPU node only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_agent_harness import Harness, close_harness, make_harness

from slack_ai_addon.core.jobs import Job, JobKind, JobRequirements, JobStatus, NodeCapabilities, NodeInfo
from slack_ai_addon.storage.db import open_sql_store
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
C = "C0GENERAL"
CPU = NodeCapabilities(engines=("cycles", "eevee", "workbench"), gpu="", blender=50200)
REASON = "it needs a GPU node; the farm has 0 live GPU nodes"


@pytest.fixture
def cpu_farm(tmp_path: Path) -> Iterator[Harness]:
    """The harness's node renders on the CPU only, and the admin requires a GPU for every job."""
    h = make_harness(tmp_path)
    deps = h.runtime.pipeline.deps
    deps.capabilities = CPU
    deps.required = JobRequirements.from_settings(require_gpu=True)
    deps.lease_s = 2.0  # the dispatcher sweeps every second
    h.agent.start()
    assert h.agent.wait_until_connected(10), h.agent.status()
    h.start_drain()
    try:
        yield h
    finally:
        close_harness(h)


def _new_job(h: Harness, before: set[str]) -> Job:
    job: Job = h.wait(lambda: next((j for j in h.store.list_jobs(limit=50) if j.id not in before), None),
                      what="the job row")
    return job


def _texts(h: Harness) -> list[str]:
    return [str(c.params.get("text", "")) for c in h.srv.calls() if c.method in ("chat.postMessage", "chat.update")]


def test_a_render_no_node_can_run_gets_one_clear_reply(cpu_farm: Harness) -> None:
    h = cpu_farm
    h.srv.send_slash_command("/render", "a red cube", user_id="U1", channel_id=C)
    job = _new_job(h, set())
    row = h.wait(lambda: (r := h.store.get(job.id)) is not None and r.status.is_final and r, what="the failed row")
    assert row.status is JobStatus.FAILED and REASON in row.error and row.attempts == 0
    h.wait(lambda: any(REASON in t for t in _texts(h)), what="the reply in Slack")
    time.sleep(1.0)  # time for a second reply, which must not come
    replies = [t for t in _texts(h) if REASON in t]
    assert len(replies) == 1, replies
    assert not h.srv.calls("chat.update")  # no placeholder was posted to update: one message says it all
    posted = [m for m in h.bot_messages(C) if REASON in m.get("text", "")]
    assert len(posted) == 1 and "(1 live render node in all)" in posted[0]["text"]
    assert h.renderer.renders == []


def test_a_job_that_becomes_unrunnable_is_failed_by_the_sweep(cpu_farm: Harness) -> None:
    h = cpu_farm
    gpu_node = NodeInfo(id="gpu-1", role="worker", engines="cycles,eevee,workbench", gpu="RTX (OPTIX)",
                        blender_version="5.2.0", last_heartbeat=time.time(), state="idle", tags=["lookdev"])
    h.store.upsert_node(gpu_node)
    assert "`gpu-1` worker: *idle*, 0 done, 0 failed, Blender 5.2.0, GPU RTX (OPTIX), tags lookdev" \
        in h.agent.status_text()  # /blender status shows what each node offers
    h.srv.send_slash_command("/render", "a blue sphere", user_id="U1", channel_id=C)
    job = _new_job(h, set())
    ts = str(h.wait(lambda: (r := h.store.get(job.id)) is not None and r.slack_ts, what="the placeholder"))
    time.sleep(1.5)  # the CPU node sweeps and claims meanwhile: the job is not for it, and a GPU node lives
    assert h.store.get(job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    gpu_node.last_heartbeat = time.time() - 120  # the GPU node went away
    h.store.upsert_node(gpu_node)
    final = h.wait(lambda: h.final_update(ts), timeout=15, what="the final message on the placeholder")
    assert REASON in str(final.params.get("text", ""))
    row = h.store.get(job.id)
    assert row is not None and row.status is JobStatus.FAILED and row.attempts == 0 and REASON in row.error
    time.sleep(1.5)  # more sweeps: none may say it again
    finals = [c for c in h.srv.calls("chat.update") if c.params.get("ts") == ts and REASON in str(c.params)]
    assert len(finals) == 1
    assert h.renderer.renders == []


# ---------------------------------------------------------------- real processes, real bpy

SCRUB = ("OPENAI_API_KEY", "ABACUS_API_KEY", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DATABASE_URL",
         "SLACK_AI_CONFIG", "SLACK_API_URL", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    config = tmp / "slack_ai.toml"
    config.write_text("lease_s = 4\nheartbeat_s = 1\nstop_grace_s = 1\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in SCRUB and not k.startswith("SLACK_AI_")}
    env.update(SLACK_AI_CONFIG=str(config), DATABASE_URL=f"sqlite:///{tmp / 'jobs.db'}",
               SLACK_AI_OUTPUT_DIR=str(tmp / "out"), XDG_DATA_HOME=str(tmp / "xdg"), PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.mark.blender
def test_cli_render_of_a_gpu_job_on_a_cpu_machine_says_why(tmp_path: Path) -> None:
    pytest.importorskip("bpy")
    args = [sys.executable, "-m", "headless_runner", "render", "a red cube, 64x48, 1 samples", "--engine",
            "workbench"]
    res = subprocess.run(args, cwd=tmp_path, env=_env(tmp_path, SLACK_AI_REQUIRE_GPU="true", SLACK_AI_NODE_GPU="none"),
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 1, res.stderr[-2000:]
    assert f"error: No render node can run this job: {REASON} (1 live render node in all)." in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    # The same request on a node that has a GPU (named in the settings) renders.
    res = subprocess.run(args, cwd=tmp_path, env=_env(tmp_path, SLACK_AI_REQUIRE_GPU="true",
                                                      SLACK_AI_NODE_GPU="Test GPU"),
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert ": done" in res.stdout


def _worker(tmp: Path, name: str, gpu: str) -> subprocess.Popen[str]:
    log = open(tmp / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from slack_ai_addon.blender import cli_command as c; "
                               "sys.exit(c.run_cli(['worker', '--budget', '0.1']))"],
        cwd=tmp, env=_env(tmp, SLACK_AI_NODE_ID=name, SLACK_AI_NODE_GPU=gpu, SLACK_AI_NODE_TAGS="farm:test"),
        stdout=log, stderr=subprocess.STDOUT, text=True)


def _wait(condition: Any, timeout: float, what: str) -> Any:
    return wait_until(condition, timeout, what)


@pytest.mark.blender
def test_worker_processes_route_gpu_jobs_to_the_gpu_node(tmp_path: Path) -> None:
    pytest.importorskip("bpy")
    store = open_sql_store(f"sqlite:///{tmp_path / 'jobs.db'}", outbox_path=tmp_path / "test-outbox.jsonl")
    workers = {"cpu-worker": _worker(tmp_path, "cpu-worker", "none"),
               "gpu-worker": _worker(tmp_path, "gpu-worker", "Test GPU")}
    try:
        nodes = _wait(lambda: (n := {n.id: n for n in store.list_nodes()}) and len(n) == 2 and n, 90,
                      "both workers in the registry")
        assert nodes["cpu-worker"].gpu == "" and nodes["gpu-worker"].gpu == "Test GPU"
        assert nodes["gpu-worker"].tags == ["farm:test"] and "workbench" in nodes["gpu-worker"].engines
        t0 = time.time()
        jobs = []
        for i in range(4):  # GPU and CPU jobs alternating, all queued at once
            jobs.append(store.add(Job(kind=JobKind.RENDER, request_text=f"a cube {i}, 64x48, 1 samples",
                                      options={"engine": "workbench"}, created_at=t0 + i,
                                      requirements=JobRequirements(gpu=i % 2 == 0, engine="workbench"))))
        rows = _wait(lambda: (r := [store.get(j.id) for j in jobs]) and all(x and x.status.is_final for x in r) and r,
                     150, "every job to finish")
        for job, row in zip(jobs, rows, strict=True):
            assert row.status is JobStatus.DONE, (row.error, (tmp_path / "cpu-worker.log").read_text()[-2000:])
            if job.requirements.gpu:
                assert row.lease_owner == "gpu-worker" and row.attempts == 1
    finally:
        for proc in workers.values():
            proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        store.close()
    assert "GPU none" in (tmp_path / "cpu-worker.log").read_text()  # what each node said it has
    assert "GPU Test GPU" in (tmp_path / "gpu-worker.log").read_text()
