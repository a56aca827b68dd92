"""Bad settings through the real CLI: exit 2, one line on stderr naming the setting and where
its value came from, no traceback, and nothing rendered or started (validation comes first)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-1111-2222-SETTINGS-TEST-SECRET"


def _run(*args: str, tmp_path: Path, config: str | None = None, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "OPENAI_", "ABACUS_", "ROUTELLM_", "LM_STUDIO_", "S3_", "DATABASE_"))
             and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    clean.update(PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(tmp_path / "xdg"),
                 SLACK_AI_OUTPUT_DIR=str(tmp_path / "out"), DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
                 NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    if config is not None:
        cfg = tmp_path / "settings.toml"
        cfg.write_text(config)
        clean["SLACK_AI_CONFIG"] = str(cfg)
    clean.update(env or {})
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "headless_runner", *args], cwd=work, env=clean,
                          capture_output=True, text=True, timeout=timeout)


def _assert_refused(res: subprocess.CompletedProcess[str], setting: str, source: str, tmp_path: Path) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert re.match(rf"^error: setting {setting} from {re.escape(source)}: .+; use .+$", lines[0]), lines[0]
    assert TOKEN not in res.stderr + res.stdout
    assert not (tmp_path / "out").exists(), "something was rendered before the settings were checked"


CASES = [
    # (id, argv, config file, environment, setting, source: "{cfg}" is the config file's path)
    ("log-level-flag", ["--log-level", "bogus", "render", "a cube"], None, {}, "log_level", "flag --log-level"),
    ("lease-not-a-number", ["render", "a cube"], 'lease_s = "soon"\n', {}, "lease_s", "config file {cfg}"),
    ("heartbeat-negative", ["render", "a cube"], "heartbeat_s = -1\n", {}, "heartbeat_s", "config file {cfg}"),
    ("lease-zero", ["render", "a cube"], "lease_s = 0\n", {}, "lease_s", "config file {cfg}"),
    ("unknown-provider", ["render", "a cube"], None, {"SLACK_AI_PROVIDER_ORDER": "offline,bogus"},
     "provider_order", "environment SLACK_AI_PROVIDER_ORDER"),
]


@pytest.mark.parametrize("argv, config, env, setting, source", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_setting_exits_2_with_one_line(argv: list[str], config: str | None, env: dict[str, str], setting: str,
                                           source: str, tmp_path: Path) -> None:
    res = _run(*argv, tmp_path=tmp_path, config=config, env=env)
    _assert_refused(res, setting, source.format(cfg=tmp_path / "settings.toml"), tmp_path)


@pytest.mark.parametrize("argv", [
    ["render", "a cube"], ["analyze", "I love this"], ["command", "/render a cube"], ["command", "/blender jobs"],
    ["stats"], ["serve"],
])
def test_every_subcommand_checks_settings_first(argv: list[str], tmp_path: Path) -> None:
    res = _run(*argv, tmp_path=tmp_path, config='lease_s = "soon"\n')
    _assert_refused(res, "lease_s", f"config file {tmp_path / 'settings.toml'}", tmp_path)
    assert "'soon' is not a number; use seconds, at least 2" in res.stderr


def test_serve_refuses_to_start_with_a_bad_setting(tmp_path: Path) -> None:
    # Tokens are set and Slack is an address nobody answers: if the setting were not checked,
    # serve would start and try to connect (and this would time out, or exit otherwise).
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": "xapp-1-A1-2-SETTINGS-TEST-SECRET",
           "SLACK_API_URL": "http://127.0.0.1:9/api/"}
    res = _run("serve", tmp_path=tmp_path, config="heartbeat_s = 45\n", env=env, timeout=25)
    _assert_refused(res, "heartbeat_s", f"config file {tmp_path / 'settings.toml'}", tmp_path)
    assert "is not well under lease_s 60 (the default)" in res.stderr


def test_good_settings_still_run(tmp_path: Path) -> None:
    res = _run("--log-level", "error", "stats", tmp_path=tmp_path, env={"SLACK_AI_LOG_LEVEL": "info"},
               config='lease_s = 30\nheartbeat_s = 5\nprovider_order = ["offline"]\n')
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
