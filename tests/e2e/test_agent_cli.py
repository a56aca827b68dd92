"""`serve` and `command` from the command line, and the Slack app manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "headless_runner", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def test_serve_refuses_missing_or_malformed_tokens() -> None:
    missing = _run(["serve"])
    assert missing.returncode == 2
    assert "SLACK_BOT_TOKEN is not set" in missing.stderr and "Traceback" not in missing.stderr
    wrong = _run(["serve"], env={"SLACK_BOT_TOKEN": "xoxp-user-token-123", "SLACK_APP_TOKEN": "xoxb-not-app-456"})
    assert wrong.returncode == 2
    assert "xoxb-" in wrong.stderr and "xapp-" in wrong.stderr
    assert "xoxp-user-token-123" not in wrong.stderr + wrong.stdout  # never echo a secret


def test_command_analyze_answers_like_slack(tmp_path: Path) -> None:
    res = _run(["command", "/analyze I love this new AI system!", "--out", str(tmp_path)],
               env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ack: in_channel" in res.stdout
    assert "Sentiment: positive" in res.stdout
    assert ": done" in res.stdout


def test_command_rejects_bad_input() -> None:
    for args in (["command", "/teleport me"], ["command", "/render"], ["command", "render a cube"]):
        res = _run(args)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.startswith("error:") and "Traceback" not in res.stderr


def test_command_blender_help_and_status(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    res = _run(["command", "/blender", "help"], env=env)
    assert res.returncode == 0 and "/render a red cube" in res.stdout
    res = _run(["command", "/blender status"], env=env)
    assert res.returncode == 0 and "Node status" in res.stdout and "queue" in res.stdout


def test_manifest_has_socket_mode_commands_and_only_used_scopes() -> None:
    manifest = yaml.safe_load((ROOT / "slack_app_manifest.yaml").read_text())
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(
        ["commands", "chat:write", "files:write", "app_mentions:read", "channels:history", "im:history"])
    assert sorted(manifest["settings"]["event_subscriptions"]["bot_events"]) == [
        "app_home_opened", "app_mention", "message.channels", "message.im"]
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/render", "/analyze", "/blender"]


def test_command_uses_the_job_database_and_stats_come_with_a_chart(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    first = _run(["command", "/analyze what a lovely day", "--out", str(tmp_path)], env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = _run(["command", "/blender", "jobs"], env=env)
    assert "what a lovely day" in jobs.stdout  # the earlier run's job, from the SQLite database
    stats = _run(["command", "/blender", "stats"], env=env)
    assert stats.returncode == 0, stats.stderr[-2000:]
    assert "Render statistics" in stats.stdout and "Success rate: 100.0%" in stats.stdout
    assert "uploaded to Slack: render-stats.png" in stats.stdout
