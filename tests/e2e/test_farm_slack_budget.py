"""One Slack budget for the farm (issue 10, item 7), with real processes.

20 /render requests arrive at one listener node (in this process: Socket Mode, placeholders)
and are rendered by 3 worker processes that share one SQLite file and answer in the job
threads themselves. The local Slack server enforces Slack's tiers (chat.update Tier 3,
chat.postMessage about 1/s per channel, 429 + Retry-After). Slack's clock runs 10x faster
here (`rate_window_scale`), so the farm is told limits 10x higher per real minute; the
renders are not shrunk to nothing: each one (8 frames) lasts several progress intervals.

With the budget: no 429 at all, every job ends done with exactly one final message and its
files in its thread. The same farm with a budget too large to bind (the per-node pacing
alone) sends more progress updates and runs into Slack's limits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_agent_harness import StubAnalyzer, StubInterpreter

from headless_runner.sandbox.slack_server import FakeSlackServer
from slack_ai_addon.agent.service import AgentService
from slack_ai_addon.core.config import Settings
from slack_ai_addon.core.jobs import JobStatus
from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
from slack_ai_addon.runtime import Runtime
from slack_ai_addon.storage.db import open_sql_store
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(240)

E2E = Path(__file__).resolve().parent
ROOT = E2E.parents[1]
SCALE = 0.1  # one Slack minute lasts 6 s here: Tier 3 is 50 chat.update per 6 s
UPDATES_PER_MINUTE = 50 / SCALE  # the same limit, told to the farm per real minute
POSTS_PER_SECOND = 1 / SCALE
JOBS = 20
CHANNELS = ("C0BUDGET1", "C0BUDGET2", "C0BUDGET3", "C0BUDGET4")
FRAME_S = 0.15  # 8 frames: a render of ~1.2 s, four progress intervals
UPDATE_INTERVAL_S = 0.3  # the per-message pacing interval of every node (Slack's 3 s, scaled)

# A farm worker: the real ThreadReplies / SlackOutbox / dispatcher over the shared SQLite
# file, with the test harness's stub interpreter and renderer (no bpy in tests/e2e).
WORKER = """
import signal, sys, threading
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_agent_harness import StubAnalyzer, StubInterpreter, StubRenderer
from slack_ai_addon.agent.replies import ThreadReplies
from slack_ai_addon.core.config import load_settings
from slack_ai_addon.core.dispatcher import run_headless
from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
from slack_ai_addon.runtime import Runtime
from slack_ai_addon.storage.db import open_sql_store

settings = load_settings()
out = Path(settings.output_dir)
out.mkdir(parents=True, exist_ok=True)
store = open_sql_store(settings.resolved_database_url(), outbox_path=out / "outbox.jsonl")
deps = PipelineDeps(store=store, interpreter=StubInterpreter(), analyzer=StubAnalyzer(), output_dir=out,
                    node_id=settings.resolved_node_id(), renderer=StubRenderer(frame_s=float(sys.argv[2])))
runtime = Runtime(settings=settings, pipeline=JobPipeline(deps), store=store, output_dir=out)
replies = ThreadReplies(runtime, update_interval_s=float(sys.argv[3]), post_interval_s=0.1)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("worker ready", flush=True)
run_headless(runtime.dispatcher(), stop, budget_s=0.2)
replies.close(60)
runtime.close()
"""


def _env(tmp: Path, srv: FakeSlackServer, name: str, updates_per_minute: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ABACUS_API_KEY", "SLACK_AI_CONFIG", "DATABASE_URL", "http_proxy",
                        "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")}
    env.update(SLACK_BOT_TOKEN=srv.bot_token, SLACK_APP_TOKEN=srv.app_token, SLACK_API_URL=srv.api_url,
               DATABASE_URL=f"sqlite:///{tmp / 'jobs.db'}", SLACK_AI_OUTPUT_DIR=str(tmp / name),
               SLACK_AI_NODE_ID=name, XDG_DATA_HOME=str(tmp / "xdg"), PYTHONUNBUFFERED="1",
               SLACK_AI_SLACK_UPDATES_PER_MINUTE=str(updates_per_minute),
               SLACK_AI_SLACK_POSTS_PER_SECOND=str(POSTS_PER_SECOND),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env


def _wait(condition: Any, timeout: float, what: str) -> Any:
    return wait_until(condition, timeout, what)


def _is_final(text: str) -> bool:
    return "Done" in text or "Failed" in text or "failed" in text


def run_farm(tmp: Path, updates_per_minute: float) -> dict[str, Any]:
    """Start the farm, send the requests, wait for every final, stop it; what Slack saw."""
    tmp.mkdir(parents=True, exist_ok=True)
    srv = FakeSlackServer(rate_window_scale=SCALE).start()
    db = tmp / "jobs.db"
    store = open_sql_store(f"sqlite:///{db}", outbox_path=tmp / "listener-outbox.jsonl")
    settings = Settings(slack_bot_token=srv.bot_token, slack_app_token=srv.app_token, slack_api_url=srv.api_url,
                        output_dir=str(tmp / "listener"), node_id="listener", heartbeat_s=0.5,
                        slack_updates_per_minute=updates_per_minute, slack_posts_per_second=POSTS_PER_SECOND)
    deps = PipelineDeps(store=store, interpreter=StubInterpreter(), analyzer=StubAnalyzer(),
                        output_dir=tmp / "listener", node_id="listener", renderer=None)
    runtime = Runtime(settings=settings, pipeline=JobPipeline(deps), store=store, output_dir=tmp / "listener")
    agent = AgentService(runtime, update_interval_s=UPDATE_INTERVAL_S, post_interval_s=0.1, ping_interval_s=2.0,
                         state_path=tmp / "listener-state.db")
    workers: dict[str, subprocess.Popen[str]] = {}
    logs = {}
    try:
        for name in ("w1", "w2", "w3"):
            logs[name] = open(tmp / f"{name}.log", "w+", encoding="utf-8")  # noqa: SIM115 (closed below)
            workers[name] = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(E2E), str(FRAME_S), str(UPDATE_INTERVAL_S)], cwd=tmp,
                env=_env(tmp, srv, name, updates_per_minute), stdout=logs[name], stderr=subprocess.STDOUT,
                text=True)
        agent.start()
        assert agent.wait_until_connected(20), agent.status()
        _wait(lambda: all((tmp / f"{n}.log").read_text().count("worker ready") for n in workers), 60,
              "three workers ready")
        started = time.monotonic()
        for i in range(JOBS):
            srv.send_slash_command("/render", f"a {('red', 'green', 'blue', 'yellow')[i % 4]} cube rotating 8",
                                   channel_id=CHANNELS[i % len(CHANNELS)], user_id=f"U{i:02d}")

        def finished() -> bool:
            jobs = store.list_jobs(limit=100)
            if len(jobs) < JOBS or not all(j.status.is_final and j.slack_ts for j in jobs):
                return False
            finals = {c.params.get("ts") for c in srv.calls("chat.update")
                      if c.status == 200 and _is_final(str(c.params.get("text", "")))}
            return all(j.slack_ts in finals for j in jobs)

        _wait(finished, 150, "every job done with its final message")
        elapsed = time.monotonic() - started
        for proc in workers.values():
            proc.send_signal(signal.SIGTERM)
        for name, proc in workers.items():
            assert proc.wait(60) == 0, (tmp / f"{name}.log").read_text()[-3000:]
        jobs = store.list_jobs(limit=100)
        calls = srv.calls()
        return {"jobs": jobs, "calls": calls, "files": list(srv.files.values()), "elapsed": elapsed,
                "threads": {j.slack_ts: srv.thread_messages(j.requester.channel_id, j.slack_ts) for j in jobs}}
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for f in logs.values():
            f.close()
        agent.stop(timeout=15)
        runtime.close()
        srv.stop()


def _updates_by_ts(calls: list[Any]) -> tuple[Counter[str], Counter[str]]:
    finals: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for c in calls:
        if c.method == "chat.update" and c.status == 200:
            (finals if _is_final(str(c.params.get("text", ""))) else others)[str(c.params.get("ts"))] += 1
    return finals, others


@pytest.mark.slow  # two farms of four processes: about 35 s on two cores
def test_twenty_renders_on_three_workers_stay_inside_one_slack_budget(tmp_path: Path) -> None:
    run = run_farm(tmp_path / "budget", UPDATES_PER_MINUTE)
    calls = run["calls"]
    limited = [(c.method, c.params.get("channel")) for c in calls if c.status == 429]
    assert limited == [], f"429s with the farm's budget: {Counter(m for m, _ in limited)}"
    jobs = run["jobs"]
    assert len(jobs) == JOBS and all(j.status is JobStatus.DONE for j in jobs), [j.status for j in jobs]
    finals, progress = _updates_by_ts(calls)
    workers_used = {j.lease_owner for j in jobs}
    for job in jobs:
        ts = job.slack_ts
        assert finals[ts] == 1, f"job {job.id}: {finals[ts]} final updates"
        # The result in its own thread: poster and turntable, once each; no final posted twice.
        uploads = [f for f in run["files"] if f.thread_ts == ts]
        assert len(uploads) == 2, [f.name for f in uploads]
        posted_finals = [m for m in run["threads"][ts] if m.get("bot_id") and _is_final(str(m.get("text", "")))
                         and m.get("ts") != ts]
        assert posted_finals == []
    # Every sent chat.update was accepted, and the farm's rate stayed under Tier 3 in any
    # (scaled) minute: 50 per 6 s, with the budget's margin.
    stamps = sorted(c.at for c in calls if c.method == "chat.update")
    window = 60 * SCALE
    most = max(sum(1 for s in stamps if t <= s < t + window) for t in stamps)
    assert most <= 50, most
    assert workers_used == {"w1", "w2", "w3"}, workers_used  # the load really was spread
    # The same farm with a budget too large to bind: each node paces only its own messages.
    loose = run_farm(tmp_path / "unbounded", 1e6)
    loose_finals, loose_progress = _updates_by_ts(loose["calls"])
    loose_limited = Counter(c.method for c in loose["calls"] if c.status == 429)
    print(f"with the budget: {len(stamps)} chat.update in {run['elapsed']:.1f}s, busiest window {most}, "
          f"{sum(progress.values())} progress/stage updates, no 429; without: "
          f"{sum(loose_progress.values())} progress/stage updates, 429s {dict(loose_limited)}")
    assert sum(progress.values()) < sum(loose_progress.values())
    assert sum(loose_finals.values()) >= JOBS  # (both farms finished every job)



def test_metrics_count_slack_calls_and_429s_by_method() -> None:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    from slack_ai_addon.agent.pacing import retrying_web_client
    from slack_ai_addon.cli.health import HealthServer, NodeHealth, NodeMetrics

    srv = FakeSlackServer().start()
    metrics = NodeMetrics()
    http = HealthServer("127.0.0.1:0", NodeHealth(node="n1", role="worker", metrics=metrics)).start()
    try:
        web = retrying_web_client(srv.bot_token, srv.api_url)
        ts = web.chat_postMessage(channel=CHANNELS[0], text="placeholder")["ts"]
        srv.inject_fault("chat.update", status=429, retry_after=0, times=2)
        web.chat_update(channel=CHANNELS[0], ts=ts, text="done")  # two 429s, then accepted
        with urlopen(f"http://{http.address}/metrics", timeout=10) as resp:  # noqa: S310 (loopback)
            text = resp.read().decode()
    finally:
        http.stop()
        srv.stop()
    samples = {(s.name, s.labels.get("method")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("slackai_slack_api_calls_total", "chat.postMessage")] == 1
    assert samples[("slackai_slack_api_calls_total", "chat.update")] == 3
    assert samples[("slackai_slack_api_ratelimited_total", "chat.update")] == 2
    assert ("slackai_slack_api_ratelimited_total", "chat.postMessage") not in samples
    assert [c.status for c in srv.calls("chat.update")] == [429, 429, 200]
