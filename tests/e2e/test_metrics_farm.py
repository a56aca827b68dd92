"""/metrics of a serving node after one render that came through Slack: a real `serve --role
both` process (real bpy, a tiny still) against the local Slack server and a fake OpenAI whose
first answer is a 500. Parsed with prometheus-client's own parser: the Slack ack latency
histogram, LLM calls, failures and cost by provider, and reconnects as a counter. And the
standalone `dashboard` command reading the same table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from headless_runner.sandbox import FakeSlackServer
from slack_ai_addon.core.jobs import Job, JobKind, JobOutput, JobStatus, NodeInfo, Requester
from slack_ai_addon.storage.db import open_sql_store
from tests.e2e.test_service_ops import _free_port, _get, _wait
from tests.fakes.fake_openai import FakeOpenAI, Reply

KEY = "sk-fake-metrics-key-0001"
SPEC = {"objects": [{"primitive": "torus", "material": {"base_color": "#00ff00"}}],
        "output": {"engine": "cycles", "width": 64, "height": 48, "samples": 2}}


def _families(base: str) -> dict[str, Any]:
    code, body = _get(base + "/metrics")
    assert code == 200
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def _value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    return sum(s.value for s in families[family].samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.mark.slow
@pytest.mark.blender
def test_metrics_after_one_render_through_slack(tmp_path: Path) -> None:
    srv = FakeSlackServer(echo_bot_messages=False, disconnect_grace_s=0.5).start()
    llm = FakeOpenAI("openai", api_key=KEY, responder=lambda body: SPEC).start()
    llm.script(Reply.server_error())  # the first attempt fails: a failure by provider
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "OPENAI", "S3_"))}
    env.update(SLACK_BOT_TOKEN=srv.bot_token, SLACK_APP_TOKEN=srv.app_token, SLACK_API_URL=srv.api_url,
               DATABASE_URL=db, SLACK_AI_OUTPUT_DIR=str(tmp_path / "out"), SLACK_AI_NODE_ID="metrics-node",
               OPENAI_API_KEY=KEY, OPENAI_BASE_URL=llm.base_url, SLACK_AI_PROVIDER_ORDER="openai,offline",
               NO_PROXY="127.0.0.1")
    node = subprocess.Popen([sys.executable, "-m", "headless_runner", "serve", "--role", "both",
                             "--http", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                            stderr=(tmp_path / "node.log").open("w"), text=True)
    store = None
    try:
        _wait(lambda: _get(base + "/health")[0] == 200, 60, "/health 200 (Slack connected)")
        envelope = srv.send_slash_command("/render", "a green torus", user_id="U0ANA", channel_id="C0METRICS")
        srv.wait_for_ack(envelope, timeout=3.0)
        store = open_sql_store(db, outbox_path=tmp_path / "test-outbox.jsonl")
        job = _wait(lambda: (jobs := store.list_jobs()) and jobs[0].status is JobStatus.DONE and jobs[0], 120,
                    "the render done")
        assert job.spec is not None and job.spec["objects"][0]["primitive"] == "torus"  # the LLM's spec
        # A reconnect: Slack asks for a refresh, slack_sdk opens a new connection.
        srv.send_disconnect("refresh_requested", close_after_s=0.5)
        srv.wait_for(lambda: srv.connections_opened >= 2 and srv.usable_connection_count == 1, 20, "the reconnect")

        def scraped() -> dict[str, Any] | None:
            m = _families(base)
            return m if _value(m, "slackai_slack_reconnects", "slackai_slack_reconnects_total") >= 1 else None
        m = _wait(scraped, 20, "reconnects_total >= 1")
        assert m["slackai_slack_reconnects"].type == "counter"
        assert _value(m, "slackai_jobs", "slackai_jobs_total", status="done", kind="render") == 1
        assert m["slackai_render_seconds"].type == "histogram"
        assert _value(m, "slackai_render_seconds", "slackai_render_seconds_count") == 1
        # Slack ack latency: the slash command's envelope, acked well inside Slack's 3 s.
        ack = m["slackai_slack_ack_seconds"]
        assert ack.type == "histogram"
        assert _value(m, "slackai_slack_ack_seconds", "slackai_slack_ack_seconds_count", type="slash_commands") >= 1
        assert _value(m, "slackai_slack_ack_seconds", "slackai_slack_ack_seconds_bucket", type="slash_commands",
                      le="3.0") == _value(m, "slackai_slack_ack_seconds", "slackai_slack_ack_seconds_count",
                                          type="slash_commands")
        # LLM by provider: the 500, then the answer; its tokens cost something.
        assert _value(m, "slackai_llm_calls", "slackai_llm_calls_total", provider="openai") == len(llm.chat_calls())
        assert len(llm.chat_calls()) >= 2
        assert _value(m, "slackai_llm_failures", "slackai_llm_failures_total", provider="openai") == 1
        assert _value(m, "slackai_llm_cost_usd", "slackai_llm_cost_usd_total", provider="openai") > 0
        health = json.loads(_get(base + "/health")[1])
        assert health["status"] == "ok" and health["slack"] == "connected"
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
        if store is not None:
            store.close()
        llm.stop()
        srv.stop()
    assert node.returncode == 0, (tmp_path / "node.log").read_text()[-3000:]


def test_the_dashboard_command_serves_the_farm_from_the_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = open_sql_store(db, outbox_path=tmp_path / "test-outbox.jsonl")
    now = time.time()
    store.upsert_node(NodeInfo(id="gpu-box", role="worker", engines="cycles", gpu="RTX 4090", started_at=now,
                               last_heartbeat=now, state="rendering", current_job="j1"))
    store.upsert_node(NodeInfo(id="old-box", role="worker", last_heartbeat=now - 3600))
    poster = tmp_path / "poster.png"
    poster.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    job = store.add(Job(kind=JobKind.RENDER, request_text="<script>x</script>", requester=Requester(user_name="ana")))
    store.set_outputs(job.id, [JobOutput(role="poster", path=str(poster), content_type="image/png")])
    store.add(Job(kind=JobKind.ANALYZE, request_text="queued"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update(DATABASE_URL=db, NO_PROXY="127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-m", "headless_runner", "dashboard", "--http", f"127.0.0.1:{port}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        code, body = _wait(lambda: (r := _get(base + "/api/farm"))[0] == 200 and r, 30, "/api/farm")
        farm = json.loads(body)
        states = {n["id"]: n["shown_state"] for n in farm["nodes"]}
        assert states == {"gpu-box": "rendering", "old-box": "offline"}  # a stale heartbeat shows offline
        assert farm["queue_depth"] == 2
        (row,) = [j for j in farm["jobs"] if j["id"] == job.id]
        assert row["prompt"] == "<script>x</script>" and row["requester"] == "ana"  # JSON, escaped by the page
        assert row["thumbnail"] == f"/api/jobs/{job.id}/thumbnail"
        assert _get(base + row["thumbnail"]) == (200, poster.read_bytes())
        page_code, page = _get(base + "/dashboard")
        assert page_code == 200 and b'<script src="/dashboard.js"' in page and b"http" not in page.lower()
        assert _get(base + "/dashboard.js")[0] == 200 and _get(base + "/health")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        store.close()
    assert proc.returncode == 0, err[-2000:]
    assert f"http://127.0.0.1:{port}/dashboard" in out
