"""`serve`: the Slack agent (Socket Mode) plus job execution, until SIGINT/SIGTERM.

Headless Blender never fires `bpy.app.timers`, so the main thread runs a blocking loop that
calls the dispatcher's drain (renders happen here, on the main thread); the agent's socket
and I/O threads only ack, enqueue and reply.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

from . import UsageError

log = logging.getLogger(__name__)

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output folder (default: $SLACK_AI_OUTPUT_DIR or ./out)")
    p.add_argument("--no-render", action="store_true", help="take only analysis jobs (a node without Blender)")


def install_stop_signals(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set `stop`; the loop then finishes the current drain and shuts down."""
    def handler(signum: int, frame: Any) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread (tests): the caller sets `stop` itself
            pass


def build_agent_runtime(settings: Any, *, with_renderer: bool, store: Any = None) -> Any:
    from ..runtime import build_runtime

    if with_renderer:
        from ..blender import headless
        headless.prepare_module_mode()
    return build_runtime(settings, cli=True, with_renderer=with_renderer, store=store)


def run(args: argparse.Namespace) -> int:
    from ..agent.service import AgentService, check_tokens
    from ..core.config import ConfigError, load_settings
    from ..core.dispatcher import run_headless

    try:
        settings = load_settings(flags={"output_dir": getattr(args, "out", None)})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    problems = check_tokens(settings)
    if problems:
        raise UsageError("cannot start the Slack agent:\n  - " + "\n  - ".join(problems) +
                         "\nSee docs/SLACK_SETUP.md, or run `python -m headless_runner sandbox` to try it locally.")
    runtime = build_agent_runtime(settings, with_renderer=not args.no_render)
    dispatcher = runtime.dispatcher()
    agent = AgentService(runtime)
    stop = threading.Event()
    install_stop_signals(stop)
    agent.start()
    if not agent.wait_until_connected(30):
        st = agent.status()
        print(f"error: the Slack agent did not connect: {st.state}: {st.detail}", file=sys.stderr)
        agent.stop(5)
        runtime.close()
        return 1
    print(f"Connected to Slack as <@{agent.status().bot_user_id}>; waiting for /render, /analyze, /blender "
          "(Ctrl-C to stop)", file=sys.stderr)
    started = time.time()
    try:
        # Until SIGINT/SIGTERM; then a running render gets stop_grace_s to finish, and what
        # this node still holds goes back to the queue for the other nodes.
        run_headless(dispatcher, stop)
    finally:
        print("stopping...", file=sys.stderr)
        agent.stop(10)
        runtime.close()
    log.info("served for %.0fs", time.time() - started)
    return 0
