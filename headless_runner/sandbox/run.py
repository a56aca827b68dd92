"""`sandbox`: the local Slack stand-in with the real agent attached, until Ctrl-C.

Open the printed URL: the page (served by FakeSlackServer) lets you type slash commands,
mention the bot and reply in threads; the agent answers over real Socket Mode.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

from slack_ai_addon.cli import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8765, help="port of the local Slack (default 8765; 0 = any)")
    p.add_argument("--out", help="output folder (default: $SLACK_AI_OUTPUT_DIR or ./out)")
    p.add_argument("--no-render", action="store_true", help="no Blender: analysis only")


def run(args: argparse.Namespace) -> int:
    from slack_ai_addon.agent.service import AgentService
    from slack_ai_addon.cli.serve import build_agent_runtime, install_stop_signals
    from slack_ai_addon.core.config import ConfigError, load_settings
    from slack_ai_addon.core.dispatcher import run_headless

    from .slack_server import FakeSlackServer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    try:
        settings = load_settings(flags={"output_dir": getattr(args, "out", None)})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    srv = FakeSlackServer(port=args.port)
    try:
        srv.start()
    except RuntimeError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port} ({exc}); try --port 0") from None
    settings.slack_bot_token, settings.slack_app_token = srv.bot_token, srv.app_token
    settings.slack_api_url = srv.api_url
    runtime = build_agent_runtime(settings, with_renderer=not args.no_render)
    dispatcher = runtime.dispatcher()
    state = Path(tempfile.mkdtemp(prefix="slackai-sandbox-")) / "agent_state.db"
    agent = AgentService(runtime, settings=settings, state_path=state)
    stop = threading.Event()
    install_stop_signals(stop)
    try:
        agent.start()
        if not agent.wait_until_connected(15):
            print(f"error: the agent did not connect: {agent.status().detail}", file=sys.stderr)
            return 1
        print(f"Sandbox Slack: {srv.base_url}  (open it in a browser; Ctrl-C to stop)", flush=True)
        run_headless(dispatcher, stop)
    finally:
        agent.stop(5)
        runtime.close()
        srv.stop()
    return 0
