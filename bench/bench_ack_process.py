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
    ap.add_argument("--render", choices=("stub", "blender"), default="stub",
                    help="blender: a real Cycles animation (bpy, 320x240) on the main thread instead of the busy stub")
    ap.add_argument("--threads", type=int, default=0,
                    help="with --render blender: render threads (0 = all cores, as Settings.render_threads=0 on a "
                         "small machine)")
    args = ap.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.render == "blender":
        return main_blender(args)

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


def main_blender(args: argparse.Namespace) -> int:
    """The burst while Blender renders a real Cycles animation on this process's main thread.

    Also measures the render's throughput (seconds per frame, median) with the chosen
    thread count, so a run with --threads 0 and one with --threads N compare both numbers.
    """
    import bpy  # noqa: F401  (Blender first: the renderer's imports need it)
    from test_agent_harness import StubAnalyzer, StubInterpreter

    from slack_ai_addon.agent.service import AgentService
    from slack_ai_addon.blender import headless
    from slack_ai_addon.blender.render_settings import RenderThreads
    from slack_ai_addon.blender.renderer import BlenderSceneRenderer
    from slack_ai_addon.core.config import Settings
    from slack_ai_addon.core.pipeline import Interpretation, JobPipeline, PipelineDeps
    from slack_ai_addon.core.scene_spec import SceneSpec
    from slack_ai_addon.runtime import Runtime
    from tests.job_store import temp_job_store

    headless.prepare_module_mode()
    stub = StubInterpreter()

    class CyclesAnimation:
        def interpret(self, text: str, *, previous: Any = None, correlation_id: str = "") -> Interpretation:
            data = stub.interpret(text, previous=previous).spec.to_json_dict()
            data["output"].update(engine="cycles", width=320, height=240, samples=32)
            data["floor"] = {"kind": "checkered"}
            return Interpretation(spec=SceneSpec.model_validate(data), provider="bench")

    frame_times: list[float] = []

    class TimedRenderer(BlenderSceneRenderer):
        def render_steps(self, spec: Any, out_dir: Path, *, job_id: str, progress: Any, should_stop: Any) -> Any:
            def timed(p: Any) -> None:
                if p.stage == "rendering":
                    frame_times.append(time.perf_counter())
                progress(p)
            return super().render_steps(spec, out_dir, job_id=job_id, progress=timed, should_stop=should_stop)

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=serve_slack, args=(child,), daemon=True)
    proc.start()
    api_url = parent.recv()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ack-proc-"))
    settings = Settings(slack_bot_token="xoxb-sandbox", slack_app_token="xapp-sandbox", slack_api_url=api_url,
                        output_dir=str(tmp), node_id="bench", render_threads=args.threads)
    store = temp_job_store()
    threads = RenderThreads(setting=args.threads)
    deps = PipelineDeps(store=store, interpreter=CyclesAnimation(), analyzer=StubAnalyzer(), output_dir=tmp,
                        node_id="bench", renderer=TimedRenderer(save_blend=False, threads=threads))
    runtime = Runtime(settings=settings, pipeline=JobPipeline(deps), store=store, output_dir=tmp,
                      render_threads=threads)
    agent = AgentService(runtime, post_interval_s=1.0, state_path=tmp / "state.db")
    dispatcher = runtime.dispatcher()
    done = threading.Event()
    result: dict[str, Any] = {}

    def orchestrate() -> None:
        try:
            parent.send(("render", "a red cube rotating 400"))
            parent.recv()
            while len(frame_times) < 2:
                time.sleep(0.05)
            parent.send(("burst", ("analyze", args.commands)))
            envs = parent.recv()
            parent.send(("latencies", envs))
            result["lat"] = sorted(parent.recv())
            result["envs"] = envs
            result["rendering"] = dispatcher.current_job_id != ""
            while len(frame_times) < 12:
                time.sleep(0.05)
        finally:
            if dispatcher.current_job_id:
                dispatcher.request_cancel(dispatcher.current_job_id)
            done.set()

    agent.start()
    assert agent.wait_until_connected(10), agent.status()
    worker = threading.Thread(target=orchestrate, daemon=True)
    worker.start()
    try:
        while not done.is_set() or dispatcher.current_job_id:
            dispatcher.drain(0.05)  # Blender's main thread: the renders run here
            time.sleep(0.005)
        lat, envs = result["lat"], result["envs"]
        missing = len(envs) - len(lat)
        gaps = sorted(b - a for a, b in zip(frame_times[1:], frame_times[2:], strict=False))
        spf = statistics.median(gaps) if gaps else float("nan")

        def p(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))]
        print(f"commands={len(envs)} acked={len(lat)} missing={missing} render_running={result['rendering']} "
              f"render_threads={threads.threads()}")
        print(f"envelope on the wire -> ack (server clock), ms: p50={statistics.median(lat):.1f} "
              f"p90={p(0.9):.1f} p99={p(0.99):.1f} max={lat[-1]:.1f}")
        print(f"render: {spf:.3f} s per frame (median of {len(gaps)} frames, Cycles 320x240)")
        return 0 if not missing and p(0.99) < 100 else 1
    finally:
        agent.stop(10)
        runtime.close()
        parent.send(("stop", None))
        parent.recv()
        proc.join(5)


if __name__ == "__main__":
    raise SystemExit(main())
