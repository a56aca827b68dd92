"""`serve`: the Slack agent (Socket Mode) plus job execution, until SIGINT/SIGTERM.

Roles (`--role`): a `listener` holds the Socket Mode connection and enqueues jobs; a
`worker` claims and renders and answers in each job's Slack thread with the bot token; `both`
(the default) does both. Headless Blender never fires `bpy.app.timers`, so the main thread
runs the dispatcher's blocking loop (renders happen here); the agent's socket and I/O threads
only ack, enqueue and reply. Logs are one JSON object per line (`--log-format text` for
people); `--http HOST:PORT` serves /health and /metrics; `--events-http HOST:PORT` takes
Slack's requests as signed HTTP POSTs instead of Socket Mode (agent/events_http.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from typing import Any

from . import UsageError

log = logging.getLogger(__name__)

# Exit status of a listener that Slack refused (too_many_websockets: the app already has its
# 10 Socket Mode connections). Restarting would be refused again: systemd units can name it
# in RestartPreventExitStatus=.
EXIT_REFUSED_BY_SLACK = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output folder (default: $SLACK_AI_OUTPUT_DIR or ./out)")
    p.add_argument("--role", choices=["listener", "worker", "both"], default="both",
                   help="listener: Slack intake only; worker: render only (answers in threads); both (default)")
    p.add_argument("--no-render", action="store_true", help="take only analysis jobs (a node without Blender)")
    p.add_argument("--http", help="HOST:PORT for GET /health and /metrics (default: $SLACK_AI_HTTP; off)")
    p.add_argument("--log-format", choices=["json", "text"], help="log lines as JSON (default) or text")
    p.add_argument("--events-http", metavar="HOST:PORT",
                   help="take Slack's events, slash commands and clicks as signed HTTP requests on HOST:PORT "
                        "instead of Socket Mode (needs SLACK_SIGNING_SECRET; default: $SLACK_AI_EVENTS_HTTP; off)")


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
    from .health import HealthServer, NodeHealth, NodeMetrics, open_runtime_waiting_for_the_database
    from .logs import service_logging

    flags = {"output_dir": getattr(args, "out", None), "http": getattr(args, "http", None),
             "events_http": getattr(args, "events_http", None), "log_level": getattr(args, "log_level", None)}
    try:
        settings = load_settings(flags=flags)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    role = args.role
    listens, renders = role in ("listener", "both"), role in ("worker", "both")
    problems = check_tokens(settings) if listens else []
    if problems:
        raise UsageError("cannot start the Slack agent:\n  - " + "\n  - ".join(problems) +
                         "\nSee docs/SLACK_SETUP.md, or run `python -m headless_runner sandbox` to try it locally.")
    service_logging(settings, fmt_flag=getattr(args, "log_format", None) or "")
    metrics = NodeMetrics()
    health = NodeHealth(node=settings.resolved_node_id(), role=role, metrics=metrics)
    http = HealthServer(settings.http, health).start() if settings.http else None
    stop = threading.Event()
    install_stop_signals(stop)
    runtime = open_runtime_waiting_for_the_database(
        lambda: build_agent_runtime(settings, with_renderer=renders and not args.no_render), health, stop)
    if runtime is None:  # stopped while waiting for the database
        if http is not None:
            http.stop()
        return 0
    runtime.add_listener(metrics)
    from ..providers.accounting import observe_calls

    stop_observing_llm = observe_calls(metrics.observe_llm_call)
    dispatcher = runtime.dispatcher(role=role) if renders else None
    agent = AgentService(runtime) if listens else None
    replies = None
    if agent is None and settings.slack_bot_token:
        from ..agent.replies import ThreadReplies

        replies = ThreadReplies(runtime)  # a worker answers in the threads of the jobs it renders
    health.agent = agent
    if agent is not None:
        agent.ack_observers.append(metrics.observe_ack)
        agent.start()
        connected = agent.wait_until_connected(30)
        if agent.refused.is_set():
            # Health keeps answering 503 with the reason until the node is gone.
            log.error("not serving: %s", agent.refusal)
            agent.stop(5)
            stop_observing_llm()
            runtime.close()
            if http is not None:
                http.stop()
            return EXIT_REFUSED_BY_SLACK
        if not connected:
            st = agent.status()
            log.error("the Slack agent did not connect: %s: %s", st.state, st.detail)
            agent.stop(5)
            runtime.close()
            if http is not None:
                http.stop()
            return 1
        # A log record, not a print: in JSON mode every line on stderr is one JSON object.
        st = agent.status()
        if settings.events_http:
            log.info("Slack bot <@%s>: %s; waiting for /render, /analyze, /blender (Ctrl-C to stop)",
                     st.bot_user_id, st.detail)
        else:
            log.info("connected to Slack as <@%s>; waiting for /render, /analyze, /blender (Ctrl-C to stop)",
                     st.bot_user_id)
        # A refusal can follow the socket's opening: then the node stops instead of looping.
        refused = agent.refused

        def stop_when_refused() -> None:
            refused.wait()
            stop.set()
        threading.Thread(target=stop_when_refused, name="slackai-refusal-watch", daemon=True).start()
    log.info("node %s serving as %s", health.node, role)
    started = time.time()
    try:
        if dispatcher is not None:
            # Until SIGINT/SIGTERM; then a running render gets stop_grace_s to finish, and what
            # this node still holds goes back to the queue for the other nodes.
            run_headless(dispatcher, stop)
        else:
            stop.wait()
    finally:
        health.stopping = True
        log.info("stopping")
        stop_observing_llm()
        if agent is not None:
            agent.stop(10)
        if replies is not None:
            replies.close()
        runtime.close()
        if http is not None:
            http.stop()
    log.info("served for %.0fs", time.time() - started)
    if agent is not None and agent.refused.is_set():
        log.error("stopped: %s", agent.refusal)
        return EXIT_REFUSED_BY_SLACK
    return 0
