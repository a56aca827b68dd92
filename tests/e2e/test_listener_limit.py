"""Slack allows 10 Socket Mode connections per app. An 11th listener is refused with a
`too_many_websockets` disconnect before its hello; it must stop with a clear message and exit
status 3 instead of reconnecting forever (slack_sdk reconnects on every disconnect)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from slack_sdk import WebClient

from headless_runner.sandbox import FakeSlackServer
from slack_ai_addon.agent.service import AgentService, AgentState
from slack_ai_addon.cli.health import NodeHealth, NodeMetrics
from slack_ai_addon.cli.serve import EXIT_REFUSED_BY_SLACK
from slack_ai_addon.core.config import Settings
from slack_ai_addon.runtime import build_runtime


@pytest.fixture
def full_app() -> Iterator[tuple[FakeSlackServer, list[websocket.WebSocket]]]:
    """A fake Slack whose app already holds its 10 connections (10 other listeners)."""
    srv = FakeSlackServer(echo_bot_messages=False).start()
    app_client = WebClient(base_url=srv.api_url)
    sockets: list[websocket.WebSocket] = []
    try:
        for _ in range(10):
            url = app_client.apps_connections_open(app_token=srv.app_token)["url"]
            sockets.append(websocket.create_connection(url, timeout=3))
            assert json.loads(sockets[-1].recv())["type"] == "hello"
        assert srv.connection_count == 10
        yield srv, sockets
    finally:
        for s in sockets:
            s.close()
        srv.stop()


def test_an_eleventh_listener_exits_with_a_clear_message(tmp_path: Path,
                                                         full_app: tuple[FakeSlackServer, list]) -> None:
    srv, _ = full_app
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env.update(SLACK_BOT_TOKEN=srv.bot_token, SLACK_APP_TOKEN=srv.app_token, SLACK_API_URL=srv.api_url,
               DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}", SLACK_AI_OUTPUT_DIR=str(tmp_path / "out"),
               SLACK_AI_NODE_ID="listener-11", SLACK_AI_PROVIDER_ORDER="offline", NO_PROXY="127.0.0.1")
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "headless_runner", "serve", "--role", "listener"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    took = time.monotonic() - started
    assert res.returncode == EXIT_REFUSED_BY_SLACK, res.stderr[-3000:]
    messages = [json.loads(line)["message"] for line in res.stderr.splitlines() if line.strip()]
    refusal = [m for m in messages if "too_many_websockets" in m]
    assert refusal and "Slack allows 10 per app" in refusal[0] and "--role worker" in refusal[0], messages
    # It gave up instead of looping: a handful of tickets (slack_sdk asks twice at start-up and
    # once more on the disconnect), not one every half second for the whole run.
    opened = len(srv.calls("apps.connections.open")) - 10
    assert 1 <= opened <= 6, (opened, took)
    assert srv.connection_count == 10  # the ten listeners were not disturbed


def test_health_says_why_a_refused_listener_is_down(tmp_path: Path,
                                                    full_app: tuple[FakeSlackServer, list]) -> None:
    srv, _ = full_app
    settings = Settings(slack_bot_token=srv.bot_token, slack_app_token=srv.app_token, slack_api_url=srv.api_url,
                        output_dir=str(tmp_path / "out"), node_id="listener-11",
                        database_url=f"sqlite:///{tmp_path / 'jobs.db'}", provider_order="offline")
    runtime = build_runtime(settings, cli=True, with_renderer=False)
    agent = AgentService(runtime, state_path=tmp_path / "state.db", ping_interval_s=2.0)
    health = NodeHealth(node="listener-11", role="listener", metrics=NodeMetrics())
    health.runtime, health.agent = runtime, agent
    try:
        agent.start()
        assert agent.refused.wait(15), agent.status()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and agent.status().state is not AgentState.ERROR:
            time.sleep(0.05)
        code, body = health.report()
        assert code == 503 and body["slack"] == "error", body
        assert "too_many_websockets" in body["reason"] and "Slack allows 10 per app" in body["reason"]
        assert not agent.wait_until_connected(0.5)
    finally:
        agent.stop(10)
        runtime.close()
