"""The CLI's progress lines on stderr."""

import io

from slack_ai_addon.cli.progress import ProgressPrinter
from slack_ai_addon.core.jobs import Job, JobKind
from slack_ai_addon.core.pipeline import JobEvent, RenderProgress


def test_frames_and_stages_are_reported_without_flooding() -> None:
    out = io.StringIO()  # not a terminal: plain lines, throttled
    printer = ProgressPrinter(out, every_s=3600)
    job = Job(kind=JobKind.RENDER, request_text="x")
    printer.on_job_event(JobEvent("started", job))
    for i in range(1, 25):
        printer.on_job_event(JobEvent("progress", job, RenderProgress("rendering", i, 24, i * 0.5)))
    printer.on_job_event(JobEvent("progress", job, RenderProgress("encoding", 24, 24, 12.0)))
    printer.on_job_event(JobEvent("done", job))
    lines = out.getvalue().splitlines()
    assert lines[0] == f"rendering job {job.id} ..."
    assert lines[1].startswith("  frame 1/24") and "left" in lines[1]
    assert lines[2] == "  frame 24/24  12.0s"  # the last frame always, with no ETA
    assert lines[3] == "  encoding ..."
    assert len(lines) == 4
