"""Slack ack latency with Slack in its own process, as in production.

    .venv/bin/python bench/bench_ack_process.py --commands 200

bench_ack.py runs the fake Slack server inside the agent's process, so the server's own
work (building and sending 200 envelopes, parsing acks) competes for the agent's GIL. Real
Slack is another machine. Here FakeSlackServer runs in a child process; the agent (real
AgentService, real slack_sdk Socket Mode client) and a dispatcher rendering a long busy
stub render run in this process. Latency is measured by the server, on its own clock:
envelope written to the socket -> ack frame read back. Target: p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

_BLOCK = b"x" * (4 << 20)


def serve_slack(conn: Connection) -> None:
    """Child process: the fake Slack, driven over a pipe."""
    from headless_runner.sandbox.slack_server import FakeSlackServer

    srv = FakeSlackServer(echo_bot_messages=False).start()
    conn.send(srv.api_url)
    while True:
        cmd, arg = conn.recv()
        if cmd == "burst":
            kind, n = arg
            envs = [srv.send_slash_command(f"/{kind}", f"I love this {i}" if kind == "analyze" else f"a cube {i}",
                                           user_id=f"U{i % 7}", channel_id=f"CB{i % 10}") for i in range(n)]
            conn.send(envs)
        elif cmd == "render":
            conn.send(srv.send_slash_command("/render", arg, user_id="UBENCH", channel_id="C0RENDERS"))
        elif cmd == "latencies":
            wanted = set(arg)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len({a.envelope_id for a in srv.acks} & wanted) < len(wanted):
                time.sleep(0.05)
            sent = {d.envelope_id: d.sent_at for d in srv.deliveries if d.envelope_id in wanted}
            conn.send([(a.received_at - sent[a.envelope_id]) * 1000 for a in srv.acks
                       if a.envelope_id in wanted and sent.get(a.envelope_id)])
        elif cmd == "stop":
            srv.stop()
            conn.send("stopped")
            return


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=200)
    ap.add_argument("--busy", type=float, default=0.25, help="seconds of CPU (GIL released) per render frame")
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="sys.setswitchinterval for the agent process (Python's default is 0.005 s)")
    args = ap.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)

    from test_agent_harness import StubAnalyzer, StubInterpreter, StubRenderer

    from slack_ai_addon.agent.service import AgentService
    from slack_ai_addon.core.config import Settings
    from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
    from slack_ai_addon.runtime import Runtime
    from tests.job_store import temp_job_store

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=serve_slack, args=(child,), daemon=True)
    proc.start()
    api_url = parent.recv()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ack-proc-"))
    settings = Settings(slack_bot_token="xoxb-sandbox", slack_app_token="xapp-sandbox", slack_api_url=api_url,
                        output_dir=str(tmp), node_id="bench")
    store = temp_job_store()
    renderer = StubRenderer(frame_s=0.0)
    original = renderer.render

    def render(spec: Any, out_dir: Path, *, job_id: str, progress: Any, should_stop: Any) -> Any:
        def busy(p: Any) -> None:
            end = time.perf_counter() + args.busy
            while time.perf_counter() < end:
                hashlib.sha256(_BLOCK).digest()  # C code, GIL released, as Blender renders
            progress(p)
        return original(spec, out_dir, job_id=job_id, progress=busy, should_stop=should_stop)

    renderer.render = render  # type: ignore[method-assign]
    deps = PipelineDeps(store=store, interpreter=StubInterpreter(), analyzer=StubAnalyzer(), output_dir=tmp,
                        node_id="bench", renderer=renderer)
    runtime = Runtime(settings=settings, pipeline=JobPipeline(deps), store=store, output_dir=tmp)
    agent = AgentService(runtime, post_interval_s=1.0, state_path=tmp / "state.db")
    dispatcher = runtime.dispatcher()
    stop = threading.Event()

    def drain() -> None:  # stands in for Blender's main thread
        while not stop.is_set():
            dispatcher.drain(0.05)
            time.sleep(0.01)

    agent.start()
    assert agent.wait_until_connected(10), agent.status()
    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    try:
        parent.send(("render", "a red cube rotating 120"))
        parent.recv()
        assert renderer.started.wait(10), "render did not start"
        time.sleep(0.5)
        parent.send(("burst", ("analyze", args.commands)))
        envs = parent.recv()
        parent.send(("latencies", envs))
        lat = sorted(parent.recv())
        rendering = dispatcher.current_job_id != ""
        missing = len(envs) - len(lat)

        def p(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))]
        print(f"commands={len(envs)} acked={len(lat)} missing={missing} render_running={rendering}")
        print(f"envelope on the wire -> ack (server clock), ms: p50={statistics.median(lat):.1f} "
              f"p90={p(0.9):.1f} p99={p(0.99):.1f} max={lat[-1]:.1f}")
        return 0 if not missing and p(0.99) < 100 else 1
    finally:
        stop.set()
        drainer.join(5)
        agent.stop(10)
        runtime.close()
        parent.send(("stop", None))
        parent.recv()
        proc.join(5)


if __name__ == "__main__":
    raise SystemExit(main())
