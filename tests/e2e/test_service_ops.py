"""Operating a node: /health and /metrics over HTTP, JSON logs, a database that is down at
start-up. Real `serve` processes (no Blender needed: `--no-render` takes analysis jobs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from slack_ai_addon.core.jobs import Job, JobKind, JobStatus
from slack_ai_addon.storage.db import open_sql_store
from tests.waiting import free_port, http_get, wait_until

SCRUB = ("OPENAI_API_KEY", "ABACUS_API_KEY", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DATABASE_URL", "S3_BUCKET_NAME",
         "SLACK_AI_CONFIG", "SLACK_API_URL", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
FAKE_SECRETS = {"S3_SECRET_KEY": "fakeS3secretValue123", "S3_ACCESS_KEY": "AKIAFAKEACCESSKEY01",
                "ABACUS_API_KEY": "abacus-fake-key-98765"}


def _free_port() -> int:
    return free_port()


def _get(url: str) -> tuple[int, bytes]:
    return http_get(url)


def _wait(condition: Any, timeout: float, what: str) -> Any:
    return wait_until(condition, timeout, what, every=0.1, ignoring=(urllib.error.URLError, ConnectionError, OSError))


def _serve(tmp: Path, database_url: str, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(DATABASE_URL=database_url, SLACK_AI_OUTPUT_DIR=str(tmp / "out"), XDG_DATA_HOME=str(tmp / "xdg"),
               SLACK_AI_NODE_ID="ops-node", SLACK_AI_PROVIDER_ORDER="offline", NO_PROXY="127.0.0.1", **FAKE_SECRETS)
    return subprocess.Popen([sys.executable, "-m", "headless_runner", "serve", "--role", "worker", "--no-render",
                             "--http", f"127.0.0.1:{port}"], cwd=tmp, env=env, stderr=subprocess.PIPE, text=True)


def test_health_metrics_and_json_logs_of_a_working_node(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    store = open_sql_store(db, outbox_path=tmp_path / "test-outbox.jsonl")
    port = _free_port()
    node = _serve(tmp_path, db, port)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: _get(base + "/health")[0] == 200, 30, "/health 200")
        job = store.add(Job(kind=JobKind.ANALYZE, request_text="I love this new AI system!"))
        _wait(lambda: store.get(job.id).status is JobStatus.DONE, 30, "the analysis job done")  # type: ignore[union-attr]

        def metrics() -> dict[str, Any]:
            code, body = _get(base + "/metrics")
            assert code == 200
            return {f.name: f for f in text_string_to_metric_families(body.decode())}

        families = _wait(lambda: (m := metrics()) and any(
            s.value >= 1 for s in m["slackai_jobs"].samples
            if s.name == "slackai_jobs_total" and s.labels == {"status": "done", "kind": "analyze"}) and m, 15,
            "jobs_total done >= 1")
        assert families["slackai_render_seconds"].type == "histogram"
        assert families["slackai_queue_depth"].type == "gauge"
        assert families["slackai_up"].samples[0].value == 1
        code, body = _get(base + "/health")
        health = json.loads(body)
        assert code == 200 and health["status"] == "ok" and health["node"] == "ops-node"
        assert health["role"] == "worker" and health["database"] == "reachable" and health["queue_depth"] == 0
        assert _get(base + "/nope")[0] == 404
    finally:
        node.send_signal(signal.SIGTERM)
        _, stderr = node.communicate(timeout=60)
        store.close()
    assert node.returncode == 0, stderr[-3000:]
    # The node registry: the node wrote its row while it ran, and says it is offline after a clean stop.
    check = open_sql_store(db, outbox_path=tmp_path / "check-outbox.jsonl")
    (row,) = check.list_nodes()
    check.close()
    assert row.id == "ops-node" and row.role == "worker" and row.jobs_done >= 1 and row.state == "offline"
    lines = [line for line in stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "node"} <= set(r) for r in records)
    assert any(r.get("job_id") == job.id for r in records), records
    for secret in FAKE_SECRETS.values():
        assert secret not in stderr


def test_a_node_whose_database_is_down_stays_up_and_says_why(tmp_path: Path) -> None:
    port = _free_port()
    closed = _free_port()  # nothing listens here: the "SQL Server" refuses at once
    node = _serve(tmp_path, f"mssql+pymssql://sa:Secret%40Pw@127.0.0.1:{closed}/slack_ai", port)
    try:
        code, body = _wait(lambda: (r := _get(f"http://127.0.0.1:{port}/health"))
                           and b"database unreachable" in r[1] and r, 60, "/health naming the database")
        assert code == 503
        health = json.loads(body)
        assert health["status"] == "unavailable" and "database unreachable" in health["reason"]
        time.sleep(1.0)
        assert node.poll() is None  # still up, still retrying
    finally:
        node.send_signal(signal.SIGTERM)
        _, stderr = node.communicate(timeout=60)
    assert node.returncode == 0, stderr[-3000:]
    assert "Secret@Pw" not in stderr and "Secret%40Pw" not in stderr
