"""The job lifecycle with real processes and real renders that outlast the lease.

Every render here takes longer than the job lease and the heartbeat period (both shrunk
through a TOML config, `SLACK_AI_CONFIG`, not the render shrunk to nothing), and some run
while other processes keep both cores busy:

- the CLI's one-shot render, a Cycles still of several lease periods, under load: done,
  one attempt, and no "lease expired" anywhere in its log;
- a farm: one `serve` node that talks to Slack (the local Slack server) and two
  `worker` nodes on one SQLite file. Six /render requests; one worker is SIGKILLed (or
  SIGTERMed) while it holds a running job. Every request gets exactly one image in its
  own thread and one final message, every row ends done, and the killed worker's job is
  finished by the other worker.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from headless_runner.sandbox.slack_server import FakeSlackServer
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
LEASE = "lease_s = 4\nheartbeat_s = 1\nstop_grace_s = {grace}\n"
SCRUB = ("OPENAI_API_KEY", "ABACUS_API_KEY", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DATABASE_URL",
         "S3_BUCKET_NAME", "SLACK_AI_CONFIG", "SLACK_API_URL", "http_proxy", "https_proxy", "HTTP_PROXY",
         "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def _env(tmp: Path, grace: float = 30.0, **extra: str) -> dict[str, str]:
    config = tmp / "slack_ai.toml"
    config.write_text(LEASE.format(grace=grace), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(SLACK_AI_CONFIG=str(config), DATABASE_URL=f"sqlite:///{tmp / 'jobs.db'}",
               SLACK_AI_OUTPUT_DIR=str(tmp / "out"), XDG_DATA_HOME=str(tmp / "xdg"), PYTHONUNBUFFERED="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **extra)
    return env


@pytest.fixture
def both_cores_busy() -> Iterator[None]:
    """Two processes spinning on the CPU: the machine as it is while other jobs run."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for p in burners:
            p.kill()
            p.wait()


def _rows(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM jobs ORDER BY created_at")]
    finally:
        conn.close()


def test_a_still_longer_than_the_lease_finishes_under_load(tmp_path: Path, both_cores_busy: None) -> None:
    env = _env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "headless_runner", "--log-level", "INFO", "render",
         "a red cube on a checkered floor, 640x480, 96 samples", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    log = proc.stderr + (tmp_path / "out" / "blender.log").read_text(errors="replace") \
        if (tmp_path / "out" / "blender.log").exists() else proc.stderr
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "done", result
    # The render really outlasted the lease several times over (else this test proves nothing).
    assert result["timings"]["render_s"] > 2 * 4, result["timings"]
    assert "lease expired" not in log and "lease lost" not in log, log[-3000:]
    (row,) = _rows(tmp_path / "jobs.db")
    assert row["status"] == "done" and row["attempts"] == 1 and json.loads(row["failed_nodes"]) == []
    image = next(p for p in result["outputs"] if p.endswith("image.png"))
    with Image.open(image) as img:
        r, g, b = img.convert("RGB").getpixel((img.width // 2, img.height // 2))
    assert r > 2 * g and r > 2 * b, (r, g, b)  # the red cube, in the middle of the frame


# ---------------------------------------------------------------------------------- the farm

PROMPTS = [f"a {color} cube, 320x240, 48 samples" for color in ("red", "green", "blue", "yellow", "purple", "orange")]
CHANNELS = ("C0FARM1", "C0FARM2", "C0FARM3")


def _start_worker(tmp: Path, env: dict[str, str], name: str) -> subprocess.Popen[str]:
    log = open(tmp / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from slack_ai_addon.blender import cli_command as c; "
                               "sys.exit(c.run_cli(['worker']))"],
        cwd=tmp, env=dict(env, SLACK_AI_NODE_ID=name), stdout=log, stderr=subprocess.STDOUT, text=True)


def _wait(condition: Any, timeout: float, what: str) -> Any:
    return wait_until(condition, timeout, what)


def _farm(tmp_path: Path, stop_signal: signal.Signals) -> None:
    srv = FakeSlackServer().start()
    env = _env(tmp_path, grace=1.0, SLACK_BOT_TOKEN=srv.bot_token, SLACK_APP_TOKEN=srv.app_token,
               SLACK_API_URL=srv.api_url)
    serve_log = open(tmp_path / "serve.log", "w", encoding="utf-8")  # noqa: SIM115
    serve = subprocess.Popen([sys.executable, "-m", "headless_runner", "serve", "--no-render"], cwd=tmp_path,
                             env=dict(env, SLACK_AI_NODE_ID="serve"), stdout=serve_log, stderr=subprocess.STDOUT)
    workers = {name: _start_worker(tmp_path, env, name) for name in ("w1", "w2")}
    db = tmp_path / "jobs.db"
    try:
        _wait(lambda: srv.usable_connection_count >= 1, 60, "the serve node's Socket Mode connection")
        for i, prompt in enumerate(PROMPTS):
            srv.send_slash_command("/render", prompt, channel_id=CHANNELS[i % 3], user_id=f"U{i}")
        _wait(lambda: len(_rows(db)) == len(PROMPTS) if db.exists() else False, 30, "six job rows")
        # Stop w1 while it holds a job that is really rendering.
        victim = _wait(lambda: next((r for r in _rows(db) if r["lease_owner"] == "w1" and r["status"] == "running"
                                     and json.loads(r["progress"] or "{}").get("stage") == "rendering"), None),
                       120, "w1 rendering a job")
        workers["w1"].send_signal(stop_signal)
        if stop_signal is signal.SIGTERM:
            # A graceful stop: it finishes its one-frame still (or hands the job back) and exits.
            assert workers["w1"].wait(120) == 0
            conn = sqlite3.connect(db, timeout=30)
            states = dict(conn.execute("SELECT id, state FROM nodes").fetchall())
            conn.close()
            assert states.get("w1") == "offline", states  # the registry says it left
        else:
            workers["w1"].wait(10)
        _wait(lambda: all(r["status"] == "done" for r in _rows(db)), 300, "every job done")
        rows = {r["id"]: r for r in _rows(db)}
        assert not [r for r in rows.values() if r["status"] in ("claimed", "running", "uploading")]
        taken_over = rows[victim["id"]]
        failed_nodes = json.loads(taken_over["failed_nodes"])
        if stop_signal is signal.SIGKILL:
            # The killed node's lease expired (a failure counted against it); the other took over.
            assert taken_over["lease_owner"] == "w2" and taken_over["attempts"] == 2 and failed_nodes == ["w1"]
        else:
            # A stopped node finishes within its grace period (a still is one frame that cannot
            # be interrupted) or hands the job back (no failure counted) for the other node.
            assert failed_nodes == []
            assert (taken_over["lease_owner"], taken_over["attempts"]) in (("w1", 1), ("w2", 2))

        # Slack: every request got exactly one image in its own thread and one final message.
        def settled() -> bool:
            finals = [c for c in srv.calls("chat.update") if "Done" in str(c.params.get("text", ""))]
            return len({c.params.get("ts") for c in finals}) == len(PROMPTS)

        _wait(settled, 60, "six final messages")
        time.sleep(2)  # a late duplicate would land now
        for row in rows.values():
            placeholder = row["slack_ts"]
            assert placeholder, row
            # One final image (a draft comes before it, and again from a node that takes a job over).
            images = [f for f in srv.files.values() if f.thread_ts == placeholder and f.filename.endswith(".png")
                      and not (f.title or "").startswith("Draft")]
            assert len(images) == 1, (row["request_text"], [(f.filename, f.title) for f in images])
            finals = [c for c in srv.calls("chat.update") if c.params.get("ts") == placeholder
                      and any(w in str(c.params.get("text", "")) for w in ("Done", "Failed", "Cancelled"))]
            assert len(finals) == 1, (row["request_text"], [c.params.get("text") for c in finals])
            color = row["request_text"].split()[1]
            assert color in images[0].title.lower() or row["id"] in images[0].title
    finally:
        for p in [serve, *workers.values()]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in [serve, *workers.values()]:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        srv.stop()


def test_farm_survives_a_worker_killed_mid_render(tmp_path: Path) -> None:
    _farm(tmp_path, signal.SIGKILL)


def test_farm_worker_stopped_mid_render_hands_its_job_back(tmp_path: Path) -> None:
    _farm(tmp_path, signal.SIGTERM)
