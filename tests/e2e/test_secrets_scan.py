"""Known fake secrets in the environment, a whole run, then a scan of everything written.

One in-process node built the way `serve` builds it (`load_settings` from an environment,
`build_runtime`, `AgentService`, JSON service logging) with every service a loopback fake:
Slack (the local Slack server, Socket Mode), an OpenAI-compatible LLM (tests/fakes), S3
(moto), SQLite. Only the renderer is the harness's stub (no Blender here). It renders,
analyses, fails an LLM call whose error body quotes the key, and fails an upload to Slack
(so the presigned S3 links are posted). Then every file under the test's folder (outputs,
outbox, databases, agent state), every log line, every Slack call, file and message the
local server recorded, and every database row is scanned: no secret appears, in any spelling.

And a `serve` process whose SQL Server password holds `@` and `#` unencoded, with the server
unreachable: its JSON log (start-up, retries, errors) and /health say why without the password.

The S3 access key id is an identifier, not a secret (docs/SECURITY.md, "Secrets"): it is part
of every presigned link, so it reaches Slack with them, and stays out of logs as a courtesy.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from test_agent_harness import StubRenderer, png_ok

from headless_runner.sandbox.slack_server import FakeSlackServer
from slack_ai_addon.agent.service import AgentService
from slack_ai_addon.cli.logs import service_logging
from slack_ai_addon.core.config import load_settings
from slack_ai_addon.runtime import build_runtime
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.fakes.s3_server import S3Server
from tests.waiting import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
C = "C0SCAN"
DB_PASSWORD = "Scan@Pass#word@42"  # unencoded '@' and '#': the URL parser must take it whole
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-1111-2222-FakeBotTokenForScan",
    "SLACK_APP_TOKEN": "xapp-1-A0SCAN-3333-FakeAppTokenForScan",
    "SLACK_SIGNING_SECRET": "fakeSigningSecretForScan8f742231b1",
    "OPENAI_API_KEY": "sk-FakeOpenAIKeyForScan0123456789abcdef",
    "ABACUS_API_KEY": "s2_FakeAbacusKeyForScan0123456789",
    "S3_SECRET_KEY": "FakeS3SecretKeyForScan/abcXYZ+0123456789",
}
S3_ACCESS_KEY_ID = "AKIAFAKESCANKEYID042"
TINY_SPEC = {"objects": [{"primitive": "cube", "material": {"base_color": "#ff0000"}}],
             "output": {"engine": "workbench", "width": 64, "height": 48, "samples": 1}}


def _spellings(secret: str) -> set[str]:
    """Every way a secret could be written down: as is, percent-encoded, JSON-escaped, and the
    tail after its first '@' (what a URL parser that stops early would show as the host)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    if "@" in secret:
        forms.add(secret.split("@", 1)[1])
    return {f for f in forms if len(f) >= 6}


def _find(text: str, secrets: dict[str, str]) -> list[str]:
    return [f"{name} as {form!r}" for name, value in secrets.items() for form in _spellings(value) if form in text]


def _free_port() -> int:
    return free_port()


def _wait(condition: Any, timeout: float, what: str) -> Any:
    return wait_until(condition, timeout, what, every=0.05)


def _database_rows(path: Path) -> str:
    """Every row of every table, as text."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))  # noqa: S608
    finally:
        conn.close()


def _slack_record(srv: FakeSlackServer) -> str:
    """What the local Slack server received, headers aside (the bot token must reach Slack)."""
    parts = [json.dumps({"method": c.method, "params": {k: v for k, v in c.params.items() if k != "token"},
                         "response": c.response}, default=str) for c in srv.calls()]
    parts += [json.dumps(srv.channel_messages(C), default=str), json.dumps(srv.ephemerals, default=str),
              json.dumps(srv.response_url_posts, default=str), json.dumps([a.payload for a in srv.acks],
                                                                          default=str)]
    for f in srv.files.values():
        parts.append(f"{f.filename} {f.title} {f.initial_comment or ''}")
        parts.append(f.data.decode("latin-1"))
    return "\n".join(parts)


def test_a_full_slack_run_writes_no_secret_anywhere(tmp_path: Path) -> None:
    s3 = S3Server().start()
    srv = FakeSlackServer(bot_token=SECRETS["SLACK_BOT_TOKEN"], app_token=SECRETS["SLACK_APP_TOKEN"],
                          rate_window_scale=0.1).start()
    llm = FakeOpenAI("openai", api_key=SECRETS["OPENAI_API_KEY"], responder=lambda body: TINY_SPEC).start()
    env = dict(SECRETS, S3_ACCESS_KEY=S3_ACCESS_KEY_ID, SLACK_API_URL=srv.api_url, OPENAI_BASE_URL=llm.base_url,
               SLACK_AI_PROVIDER_ORDER="openai,offline", S3_ENDPOINT_URL=s3.url, S3_BUCKET_NAME="scan-renders",
               DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}", SLACK_AI_OUTPUT_DIR=str(tmp_path / "out"),
               SLACK_AI_NODE_ID="scan-node", SLACK_AI_LOG_LEVEL="DEBUG")
    settings = load_settings(env=env)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    service_logging(settings, fmt_flag="json")  # exactly what `serve` installs ...
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]  # ... writing here instead of stderr
    runtime = agent = None
    stop = threading.Event()
    try:
        logging.getLogger("scan").info("settings: %s", settings.public_dict())  # what a start-up dump shows
        runtime = build_runtime(settings, cli=True, with_renderer=False)
        runtime.pipeline.deps.renderer = StubRenderer(frame_s=0.01)
        agent = AgentService(runtime, update_interval_s=0.3, post_interval_s=0.1,
                             state_path=tmp_path / "agent_state.db")
        agent.start()
        assert agent.wait_until_connected(15), agent.status()
        dispatcher = runtime.dispatcher()

        def drain() -> None:
            while not stop.is_set():
                dispatcher.drain(0.05)
                time.sleep(0.01)
        drainer = threading.Thread(target=drain, name="scan-drain", daemon=True)
        drainer.start()

        def finished(n: int) -> bool:
            return sum(j.status.is_final for j in runtime.store.list_jobs(limit=20)) >= n

        # 1. A render: the LLM's spec, the stub's PNG uploaded to Slack and to S3.
        srv.send_slash_command("/render", "a red cube", user_id="U0SCAN", channel_id=C)
        _wait(lambda: finished(1), 30, "the render")
        image = _wait(lambda: [f for f in srv.files.values() if f.filename == "render.png"], 10, "the upload")[0]
        assert png_ok(image.data)[0] > 200
        # 2. An analysis whose LLM call fails with an error body quoting the key: offline answers.
        llm.script(Reply.openai_error(401, f"Incorrect API key provided: {SECRETS['OPENAI_API_KEY']}. "
                                           "You can find your API key at https://platform.openai.com/account",
                                      type_="invalid_request_error", code="invalid_api_key"))
        srv.send_slash_command("/analyze", "I love this render", user_id="U0SCAN", channel_id=C)
        _wait(lambda: finished(2), 30, "the analysis")
        # 3. A render whose upload to Slack fails: the reply lists the presigned S3 links.
        srv.inject_fault("upload", status=500, error=None, times=20)
        srv.send_slash_command("/render", "a red cube again", user_id="U0SCAN", channel_id=C)
        _wait(lambda: finished(3), 30, "the render with a failed upload")
        failed_upload = _wait(lambda: [m for m in srv.channel_messages(C) if "The files are here" in m.get("text", "")],
                              30, "the upload-failure reply")[0]
        srv.clear_faults()
    finally:
        stop.set()
        if agent is not None:
            agent.stop(10)
        if runtime is not None:
            runtime.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        llm.stop()
        s3.stop()
        srv.stop()

    assert llm.chat_calls(), "the LLM was never asked"
    # The S3 access key id is an identifier: it is in the presigned links posted to Slack ...
    assert f"X-Amz-Credential={S3_ACCESS_KEY_ID}" in failed_upload["text"]
    assert SECRETS["S3_SECRET_KEY"] not in failed_upload["text"] and "X-Amz-Signature=" in failed_upload["text"]
    # ... and, as a courtesy, in no log line.
    log_text = stream.getvalue()
    lines = [json.loads(line) for line in log_text.splitlines() if line.strip()]
    assert len(lines) > 50 and all("message" in r for r in lines)  # DEBUG: slack_sdk, boto, openai all talked
    assert any("scan-renders" in line for line in log_text.splitlines())  # S3 was used, and logged

    found: dict[str, list[str]] = {}
    found["log lines"] = _find(log_text, dict(SECRETS, S3_ACCESS_KEY=S3_ACCESS_KEY_ID))
    found["Slack calls"] = _find(_slack_record(srv), SECRETS)
    found["public_dict"] = _find(json.dumps(settings.public_dict()) + repr(settings), SECRETS) + \
        ([S3_ACCESS_KEY_ID] if S3_ACCESS_KEY_ID in json.dumps(settings.public_dict()) else [])
    found["database rows"] = _find(_database_rows(tmp_path / "jobs.db"), SECRETS)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in files) and any(p.name == "jobs.db" for p in files)
    for path in files:  # text, JSON, SQLite pages and WAL files, images: as bytes
        hits = _find(path.read_bytes().decode("latin-1"), SECRETS)
        if hits:
            found[str(path.relative_to(tmp_path))] = hits
    assert not any(found.values()), {k: v for k, v in found.items() if v}


def test_an_unreachable_sql_server_with_an_at_sign_password_leaks_nothing(tmp_path: Path) -> None:
    port, closed = _free_port(), _free_port()  # nothing listens on `closed`: the server refuses at once
    url = f"mssql+pymssql://slack_ai:{DB_PASSWORD}@127.0.0.1:{closed}/slack_ai"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "S3_", "OPENAI", "ABACUS"))}
    env.update(SECRETS, S3_ACCESS_KEY=S3_ACCESS_KEY_ID, DATABASE_URL=url, XDG_DATA_HOME=str(tmp_path / "xdg"),
               SLACK_AI_OUTPUT_DIR=str(tmp_path / "out"), SLACK_AI_NODE_ID="scan-db", SLACK_AI_LOG_LEVEL="DEBUG",
               SLACK_AI_PROVIDER_ORDER="offline", PYTHONPATH=str(ROOT))
    node = subprocess.Popen([sys.executable, "-m", "headless_runner", "serve", "--role", "worker", "--no-render",
                             "--log-format", "json", "--http", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        def health() -> tuple[int, bytes] | None:
            if node.poll() is not None:
                raise AssertionError(f"serve exited with {node.returncode}: {node.communicate()[1][-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:  # noqa: S310
                    return resp.status, resp.read()
            except urllib.error.HTTPError as err:
                body = err.read()
                return (err.code, body) if b"database unreachable" in body else None
            except OSError:
                return None
        code, body = _wait(health, 60, "/health naming the unreachable database")
        time.sleep(0.5)
    finally:
        node.send_signal(signal.SIGTERM)
        _, stderr = node.communicate(timeout=60)
    assert node.returncode == 0, stderr[-3000:]
    assert code == 503 and b"database unreachable" in body
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any("database unreachable" in r["message"] for r in records), stderr[-2000:]
    secrets = dict(SECRETS, DB_PASSWORD=DB_PASSWORD)
    assert _find(stderr, secrets) == [] and _find(body.decode(), secrets) == []
    assert S3_ACCESS_KEY_ID not in stderr
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert _find(path.read_bytes().decode("latin-1"), secrets) == [], path
