"""`render` and `analyze`: one job end to end, through the same pipeline as Slack."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..core.jobs import Job, JobKind, JobStatus, Requester
from . import UsageError

# Keep module import light: the parser imports every subcommand module.


def add_render_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help='what to render, e.g. "a red cube on a checkered floor, rotating"')
    p.add_argument("--out", help="output folder (default: $SLACK_AI_OUTPUT_DIR or ./out)")
    p.add_argument("--engine", choices=["cycles", "eevee", "workbench"], help="override the render engine")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_analyze_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help="the text to analyze")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _runtime(args: argparse.Namespace, *, with_renderer: bool) -> Any:
    from ..core.config import ConfigError, load_settings
    from ..runtime import build_runtime

    flags = {"output_dir": getattr(args, "out", None)}
    try:
        settings = load_settings(flags=flags)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if with_renderer:
        from ..blender import headless
        headless.prepare_module_mode()
    return build_runtime(settings, cli=True, with_renderer=with_renderer)


def _print_summary(job: Job) -> None:
    print(f"job {job.id}: {job.status.value}")
    provider = job.result.get("provider")
    if provider:
        print(f"interpreted by: {provider}")
    for note in job.result.get("notes", []):
        print(f"note: {note}")
    if job.result.get("not_understood"):
        print("not understood: " + ", ".join(job.result["not_understood"]))
    for w in job.warnings:
        print(f"warning: {w}")
    if job.error:
        print(f"error: {job.error}")
    for o in job.outputs:
        # The local store fills s3_key/url too (same key layout, file:// URL): show only real uploads.
        extra = f"  (s3: {o.s3_key})" if o.s3_key and not o.url.startswith("file:") else ""
        print(f"{o.role:>7}: {o.path}{extra}")
    if job.result.get("draft"):
        print(f"  draft: {job.result['draft']}")  # the fast draft posted before the final (core/draft.py)
    if job.timings:
        print("timings: " + ", ".join(f"{k}={v:.2f}" for k, v in sorted(job.timings.items())))


def job_json(job: Job) -> dict[str, Any]:
    data = job.to_dict()
    data["job_id"] = job.id
    data["output_details"] = data["outputs"]
    data["outputs"] = [o.path for o in job.outputs]  # the contract: file paths
    return data


def run_one_job(rt: Any, job: Job) -> Job:
    """One job through the same dispatcher loop and heartbeat as `serve` and the farm
    workers, claiming only this job; Ctrl-C stops the render and cancels the job."""
    import signal
    import threading

    from ..core.dispatcher import run_one_job as run_job

    stop = threading.Event()
    previous = None
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    except ValueError:  # not the main thread (tests)
        pass
    try:
        return run_job(rt.pipeline, job, stop=stop, heartbeat_s=rt.settings.heartbeat_s,
                       stop_grace_s=rt.settings.stop_grace_s)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _run_and_close(rt: Any, job: Job) -> Job:
    """One job, then the runtime closed; bad input becomes the CLI's exit 2."""
    from ..core.pipeline import UserError

    try:
        return run_one_job(rt, job)
    except UserError as exc:
        raise UsageError(str(exc)) from None
    finally:
        rt.close()


def run_render(args: argparse.Namespace) -> int:

    if not args.prompt.strip():
        raise UsageError('empty prompt: say what to render, e.g. render "a red cube on a checkered floor"')
    rt = _runtime(args, with_renderer=True)
    from .progress import ProgressPrinter, log_blender_output

    log_blender_output(rt.output_dir)
    rt.add_listener(ProgressPrinter())
    job = _run_and_close(rt, Job(kind=JobKind.RENDER, request_text=args.prompt, requester=Requester(source="cli"),
                                 options={"engine": args.engine} if args.engine else {}))
    if args.json:
        print(json.dumps(job_json(job), indent=None, default=str))
    else:
        _print_summary(job)
    return 0 if job.status is JobStatus.DONE else 1


def run_analyze(args: argparse.Namespace) -> int:

    if not args.text.strip():
        raise UsageError("empty text: give me something to analyze")
    rt = _runtime(args, with_renderer=False)
    job = _run_and_close(rt, Job(kind=JobKind.ANALYZE, request_text=args.text, requester=Requester(source="cli")))
    if args.json:
        out = dict(job.result)
        out["job_id"] = job.id
        out["status"] = job.status.value
        print(json.dumps(out, default=str))
    else:
        if job.status is not JobStatus.DONE:
            print(f"error: {job.error}", file=sys.stderr)
            return 1
        r = job.result
        print(f"sentiment: {r.get('sentiment')} (score {r.get('score')})")
        for key in ("summary", "emotions", "key_phrases"):
            if r.get(key):
                print(f"{key}: {r[key]}")
        print(f"provider: {r.get('provider')}" + (f" / {r['model']}" if r.get("model") else ""))
    return 0 if job.status is JobStatus.DONE else 1


add_arguments = add_render_arguments
run = run_render
