"""What a Slack user waits for (not a test).

    .venv/bin/python bench/bench_slack.py [--quick] [--runs 3] [--no-write]

1. Time to first image: `/render a red cube` (the default still: 640x480, 32 samples asked;
   `--quick`: 160x120) sent by the fake Slack server (FakeSlackServer, Slack's rate tiers on,
   real clock) to the real AgentService (slack_sdk Socket Mode), the offline interpreter,
   the SQLite job store and the real `BlenderSceneRenderer` on this (main) thread: from the
   command on the wire to the image's upload completing (`files.completeUploadExternal`),
   with the ack and the render's own time alongside.
2. Pipeline against raw `bpy.ops.render.render` on the same scene: the job's wall time
   through `run_one_job` (SQLite store, dispatcher heartbeat, interpretation, build, .blend,
   poster, cleanup; no draft first) against building the scene and calling the render
   operator directly.
   Target: within 5%.
3. Peak RSS of this process idle (before any render) and during the renders (ru_maxrss).
4. Slack pacing: a 300-frame animation (stub renderer, 20 ms a frame) streams its progress
   into one channel under Slack's limits (1 message per second per channel, chat.update
   Tier 3): the number of 429 answers (target 0), the busiest second's calls in the channel
   and the updates sent.

Writes its section into docs/BENCHMARKS.md ("## Time to first image, pipeline vs raw render,
Slack pacing") unless --no-write; the last line is a BENCH_SUMMARY for bench/run_all.py.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from _common import emit_summary, load_average, median_spread, write_section  # noqa: E402

SECTION = "## Time to first image, pipeline vs raw render, Slack pacing"


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def first_image(prompt: str, runs: int, tmp: Path) -> dict[str, list[float]]:
    """Slack command -> image uploaded, through the whole real path (seconds per run)."""
    from test_agent_harness import close_harness, make_harness

    from slack_ai_addon.blender.renderer import BlenderSceneRenderer
    from slack_ai_addon.providers.offline import OfflineInterpreter

    out: dict[str, list[float]] = {"first image": [], "last image": [], "uploads": [], "ack": [], "render": []}
    h = make_harness(tmp, post_interval_s=1.0, update_interval_s=3.0)
    h.runtime.pipeline.deps.renderer = BlenderSceneRenderer()
    h.runtime.pipeline.deps.interpreter = OfflineInterpreter()
    h.agent.start()
    try:
        assert h.agent.wait_until_connected(10), h.agent.status()
        dispatcher = h.runtime.dispatcher()
        for i in range(runs):
            channel = f"C0FIRST{i}"
            sent = time.time()
            env = h.srv.send_slash_command("/render", prompt, user_id="UBENCH", channel_id=channel)
            deadline = time.monotonic() + 300
            job = None
            while time.monotonic() < deadline and (job is None or not job.status.is_final):
                dispatcher.drain(0.05)  # bpy on this (main) thread, as in Blender
                jobs = [j for j in h.store.list_jobs(limit=50) if j.requester.channel_id == channel]
                job = jobs[0] if jobs else None
                time.sleep(0.005)
            if job is None or not job.status.is_final:
                raise RuntimeError("the render did not finish within 300 s")
            def uploads_of(channel: str = channel, sent: float = sent) -> list[float]:
                return sorted(c.at for c in h.srv.calls("files.completeUploadExternal")
                              if c.params.get("channel_id") == channel and c.at >= sent)
            h.wait(uploads_of, timeout=60, what="the upload")
            time.sleep(1.0)  # a final image after a draft
            uploads = uploads_of()
            ack = next(a.received_at for a in h.srv.acks if a.envelope_id == env)
            out["first image"].append(uploads[0] - sent)
            out["last image"].append(uploads[-1] - sent)
            out["uploads"].append(len(uploads))
            out["ack"].append((ack - sent) * 1000)
            if "render_s" in job.timings:
                out["render"].append(job.timings["render_s"])
            while dispatcher.current_job_id:
                dispatcher.drain(0.05)
    finally:
        close_harness(h)
    return out


def pipeline_vs_raw(prompt: str, runs: int, tmp: Path) -> tuple[list[float], list[float]]:
    """(pipeline job wall s, raw render operator s) per run, interleaved, the same spec."""
    from slack_ai_addon.blender import compat
    from slack_ai_addon.blender.builder import build_scene
    from slack_ai_addon.blender.renderer import BlenderSceneRenderer, configure_render, run_render_operator
    from slack_ai_addon.core.dispatcher import run_one_job
    from slack_ai_addon.core.jobs import Job, JobKind, JobStatus
    from slack_ai_addon.core.pipeline import JobPipeline, PipelineDeps
    from slack_ai_addon.providers.offline import OfflineInterpreter
    from tests.job_store import temp_job_store

    interpreter = OfflineInterpreter()
    spec = interpreter.interpret(prompt).spec
    # No draft before the final here (core/draft.py): the comparison is one render each way.
    pipeline = JobPipeline(PipelineDeps(store=temp_job_store(tmp / "db"), interpreter=interpreter,
                                        output_dir=tmp / "jobs", node_id="bench", renderer=BlenderSceneRenderer(),
                                        drafts=False))
    piped: list[float] = []
    raw: list[float] = []
    for i in range(runs + 1):  # the first pair warms up (kernels, fonts) and is dropped
        start = time.perf_counter()
        job = run_one_job(pipeline, Job(kind=JobKind.RENDER, request_text=prompt), heartbeat_s=1.0)
        wall = time.perf_counter() - start
        assert job.status is JobStatus.DONE, job.error
        shutil.rmtree(pipeline.job_dir(job), ignore_errors=True)
        start = time.perf_counter()
        built = build_scene(spec, f"raw-{i}")
        try:
            configure_render(built.scene, spec)
            compat.set_still_format(built.scene, "PNG")
            built.scene.render.filepath = str(tmp / "raw.png")
            run_render_operator(built.scene, write_still=True)
        finally:
            built.cleanup()
        if i:
            piped.append(wall)
            raw.append(time.perf_counter() - start)
    return piped, raw


def pacing(frames: int, frame_s: float, tmp: Path) -> dict[str, Any]:
    """A long animation's progress in one channel under Slack's real-clock limits."""
    from test_agent_harness import close_harness, make_harness

    h = make_harness(tmp, frame_s=frame_s, post_interval_s=1.0, update_interval_s=3.0)
    h.agent.start()
    channel = "C0PACING"
    try:
        assert h.agent.wait_until_connected(10), h.agent.status()
        h.start_drain()
        start = time.time()
        h.srv.send_slash_command("/render", f"a red cube rotating {frames}", user_id="UBENCH", channel_id=channel)
        h.wait(lambda: any(c.params.get("channel") == channel and "Done" in str(c.params.get("text", ""))
                           for c in h.srv.calls("chat.update")), timeout=frames * frame_s + 60, what="final update")
        h.wait(lambda: h.srv.calls("files.completeUploadExternal"), timeout=30, what="the upload")
        elapsed = time.time() - start
        calls = [c for c in h.srv.calls() if c.method.startswith("chat.") and c.at >= start
                 and c.params.get("channel") == channel]
        per_second = Counter(int(c.at - start) for c in calls)
        posts_per_second = Counter(int(c.at - start) for c in calls if c.method == "chat.postMessage")
        limited = [c for c in h.srv.calls() if c.status == 429 and c.at >= start]
        return {"frames": frames, "elapsed_s": elapsed, "calls": len(calls),
                "updates": sum(c.method == "chat.update" for c in calls),
                "posts": sum(c.method == "chat.postMessage" for c in calls),
                "busiest_second": max(per_second.values(), default=0),
                "busiest_second_posts": max(posts_per_second.values(), default=0), "429": len(limited)}
    finally:
        close_harness(h)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 160x120 still, one run, 10 ms frames (CI)")
    ap.add_argument("--runs", type=int, default=0, help="runs per measure (default 3; --quick 1)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    prompt = "a red cube, 160x120" if args.quick else "a red cube"

    import bpy

    from slack_ai_addon.blender import headless

    headless.prepare_module_mode()
    t0 = time.perf_counter()
    load_start = load_average()
    rss_idle, peak_idle = rss_mb(), peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="bench-slack-") as tmp_name:
        tmp = Path(tmp_name)
        first = first_image(prompt, runs, tmp / "first")
        piped, raw = pipeline_vs_raw(prompt, runs, tmp / "raw")
        peak_render = peak_rss_mb()
        pace = pacing(300, 0.01 if args.quick else 0.02, tmp / "pacing")
    elapsed = time.perf_counter() - t0
    over = statistics.median(piped) / statistics.median(raw) - 1
    ttfi = statistics.median(first["first image"])
    rows = [
        ("time to first image (`/render " + prompt + "`: command on the wire -> upload complete)",
         median_spread(first["first image"]) + " s"),
        ("  the last image of the job (a draft comes first where the job makes one)",
         f"{median_spread(first['last image'])} s ({statistics.median(first['uploads']):.0f} images)"),
        ("  the ack", median_spread(first["ack"], "{:.0f}") + " ms"),
        ("  the job's render_s", median_spread(first["render"]) + " s" if first["render"] else "-"),
        ("pipeline job (`run_one_job`, SQLite) vs raw build + `bpy.ops.render.render`",
         f"{median_spread(piped)} s vs {median_spread(raw)} s: **{over * 100:+.1f}%**"),
        ("RSS idle (after `import bpy`) / peak idle / peak during renders",
         f"{rss_idle:.0f} MB / {peak_idle:.0f} MB / {peak_render:.0f} MB"),
        (f"pacing: {pace['frames']}-frame animation, one channel", f"{pace['elapsed_s']:.1f} s to the final "
         f"message; {pace['posts']} posts, {pace['updates']} updates; busiest second {pace['busiest_second']} "
         f"calls ({pace['busiest_second_posts']} posts); **{pace['429']} answers 429**"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    text = f"""{SECTION}

`.venv/bin/python bench/bench_slack.py{' --quick' if args.quick else ''}` (bpy {bpy.app.version_string};
FakeSlackServer in this process with Slack's rate tiers on a real clock, AgentService with its
default pacing (1 post per second per channel, an update every 3 s), offline interpreter,
SQLite job store; medians (min-max) of {runs} runs; 2 shared CPU cores, load average
{load_start:.1f} at the start, {load_average():.1f} at the end; ran {elapsed:.0f} s):

| measure | result |
|---|---|
{table}

Targets: pipeline within 5% of the raw render; no 429 while a 300-frame animation reports
progress. The first image is the draft (core/draft.py) where the job makes one; the final
still follows, and its time is mostly the render itself.
"""
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    emit_summary("slack", [
        (f"time to first image (/render {prompt})", f"{ttfi:.1f} s (render {median_spread(first['render'])} s)",
         "", None),
        ("pipeline vs raw bpy.ops.render.render", f"{over * 100:+.1f}%", "within 5%", over <= 0.05),
        ("peak RSS idle / during renders", f"{peak_idle:.0f} / {peak_render:.0f} MB", "", None),
        ("Slack pacing: 300-frame animation, 1 post/s per channel",
         f"{pace['429']} x 429, busiest second {pace['busiest_second']} calls", "no 429", pace["429"] == 0),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
