"""Slack ack latency: envelope sent by the (fake) Slack server -> ack received, while a render runs.

    .venv/bin/python bench/bench_ack.py --commands 200

Starts FakeSlackServer and the real AgentService (slack_sdk websocket_client Socket Mode),
keeps the dispatcher busy with a long CPU-bound stub render (--load native: GIL released,
as Blender does; --load python: GIL held, a harsher case), then sends N slash
commands in a burst and reports p50/p99/max of send -> ack as recorded by the server.
Target: p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

BUSY_S = 0.25
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from test_agent_harness import close_harness, make_harness  # noqa: E402

LOAD = "native"
_BLOCK = b"x" * (4 << 20)


def busy_render_frame(seconds: float) -> None:
    """A CPU-bound frame. native: hashing in C with the GIL released, as Blender renders
    (docs/BLENDER_RULES.md, "Threads": Python threads kept running with < 20 ms gaps).
    python: a pure Python loop that holds the GIL, a worst case Blender does not produce."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        if LOAD == "native":
            hashlib.sha256(_BLOCK).digest()
        else:
            x += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=200)
    ap.add_argument("--kind", choices=["analyze", "render"], default="analyze",
                    help="slash command to burst (analyze: cheap jobs; render: queued behind the busy render)")
    ap.add_argument("--load", choices=["native", "python"], default="native",
                    help="native: CPU work with the GIL released (like Blender); python: GIL held")
    ap.add_argument("--busy", type=float, default=0.25, help="seconds of pure-Python CPU per render frame")
    args = ap.parse_args()
    global BUSY_S, LOAD
    BUSY_S, LOAD = args.busy, args.load
    h = make_harness(Path(tempfile.mkdtemp(prefix="bench-ack-")), frame_s=0.0, post_interval_s=1.0)
    # Frames that burn CPU in Python instead of sleeping.
    original = h.renderer.render

    def render(spec, out_dir, *, job_id, progress, should_stop):  # type: ignore[no-untyped-def]
        def busy_progress(p):  # type: ignore[no-untyped-def]
            busy_render_frame(BUSY_S)
            progress(p)
        return original(spec, out_dir, job_id=job_id, progress=busy_progress, should_stop=should_stop)
    h.renderer.render = render  # type: ignore[method-assign]
    h.agent.start()
    assert h.agent.wait_until_connected(10), h.agent.status()
    h.start_drain()
    try:
        h.srv.send_slash_command("/render", "a red cube rotating 120", user_id="UBENCH", channel_id="C0RENDERS")
        assert h.renderer.started.wait(10), "render did not start"
        time.sleep(0.5)
        sent: dict[str, float] = {}
        for i in range(args.commands):
            text = f"I love this {i}" if args.kind == "analyze" else f"a red cube {i}"
            env = h.srv.send_slash_command(f"/{args.kind}", text, user_id=f"U{i % 7}",
                                           channel_id=f"CB{i % 10}")
            sent[env] = time.time()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len({a.envelope_id for a in h.srv.acks} & set(sent)) < len(sent):
            time.sleep(0.05)
        acks = {a.envelope_id: a for a in h.srv.acks if a.envelope_id in sent}
        deliveries = {d.envelope_id: d for d in h.srv.deliveries if d.envelope_id in sent}
        lat, total = [], []
        for env, ack in acks.items():
            d = deliveries.get(env)
            lat.append((ack.received_at - (d.sent_at if d and d.sent_at else sent[env])) * 1000)
            total.append((ack.received_at - sent[env]) * 1000)
        lat.sort()
        total.sort()
        missing = len(sent) - len(acks)
        rendering = h.runtime.dispatcher().current_job_id != ""
        p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
        print(f"commands={len(sent)} acked={len(acks)} missing={missing} render_running={rendering} "
              f"timeouts={len(h.srv.operation_timeouts)}")
        print(f"envelope on the wire -> ack, ms: p50={statistics.median(lat):.1f} p90={p(0.90):.1f} "
              f"p99={p(0.99):.1f} max={lat[-1]:.1f}")
        t99 = total[min(len(total) - 1, int(0.99 * len(total)))]
        print(f"send_slash_command() call -> ack (includes the fake's own queue), ms: "
              f"p50={statistics.median(total):.1f} p99={t99:.1f} max={total[-1]:.1f}")
        return 0 if not missing and p(0.99) < 100 else 1
    finally:
        close_harness(h)
        threading.Event().wait(0.1)


if __name__ == "__main__":
    raise SystemExit(main())
