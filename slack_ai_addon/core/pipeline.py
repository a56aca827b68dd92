"""The job pipeline: the same three steps for Slack, the CLI, the Blender panel and farm nodes.

1. `prepare(job)`   any thread, no bpy: interpret the text into a SceneSpec (LLM or offline),
                    or run an analysis job completely.
2. `render(job)`    Blender's main thread only: build + render through a `SceneRenderer`.
3. `finish(job)`    any thread: spec JSON beside the outputs, object storage, final status.

Listeners (the Slack replier, the Blender panel) hear `JobEvent`s; they must return
quickly and never raise into the pipeline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, cast

from ..textutil import fit_request
from .cost import CostPolicy, CostRefused, describe_fit, fit_to_tier
from .draft import DraftMode, draft_spec
from .draft import mode_of as draft_mode_of
from .draft import plan as draft_plan
from .draft import without_mode_words as without_draft_mode_words
from .jobs import (
    Fenced,
    Job,
    JobKind,
    JobOutput,
    JobRequirements,
    JobStatus,
    JobStore,
    NodeCapabilities,
    live_render_nodes,
    unrunnable_reason,
)
from .scene_spec import SceneSpec, SpecError, parse_scene_spec
from .variations import split_request as split_variations
from .variations import variants as variants_of

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- interfaces at the edges

@dataclass
class Interpretation:
    """What an interpreter made of a request."""

    spec: SceneSpec
    provider: str = "offline"  # e.g. "offline", "routellm:gpt-4o-2024-11-20"
    warnings: list[str] = field(default_factory=list)  # clamped values, assumptions
    not_understood: list[str] = field(default_factory=list)  # words/phrases that were ignored
    notes: list[str] = field(default_factory=list)  # e.g. "all LLM providers failed; used offline"


class SpecInterpreter(Protocol):
    def interpret(self, text: str, *, previous: SceneSpec | None = None,
                  correlation_id: str = "") -> Interpretation:
        """Text (or an edit of `previous`) to a spec. Raises SpecError for unusable input."""
        ...


class Analyzer(Protocol):
    def analyze(self, text: str, *, correlation_id: str = "") -> dict[str, Any]:
        """At least: sentiment (positive/negative/neutral/mixed), score, provider."""
        ...


@dataclass
class RenderProgress:
    stage: str  # building | rendering | encoding | cleanup
    frame: int = 0
    frames: int = 1
    elapsed_s: float = 0.0

    @property
    def eta_s(self) -> float | None:
        if self.frame <= 0 or self.frames <= 1:
            return None
        return self.elapsed_s / self.frame * (self.frames - self.frame)


@dataclass
class RenderResult:
    outputs: list[JobOutput]
    frames: int = 1
    timings: dict[str, float] = field(default_factory=dict)  # build_s, render_s, encode_s, cleanup_s
    stopped: str = ""  # "" finished; "cancelled"; "time limit" -> partial outputs may exist


ProgressFn = Callable[[RenderProgress], None]
StopFn = Callable[[], str]  # returns "" to go on, or the reason to stop


RenderSteps = Generator[None, None, RenderResult]


def drive(steps: RenderSteps) -> RenderResult:
    """Run a stepwise render to the end (headless: no timer between the steps). The one
    driver of render generators; the GUI's timer instead advances them a step per tick."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast(RenderResult, done.value)


class SceneRenderer(Protocol):
    """Implemented in `blender/`. Called on Blender's main thread only."""

    def render_steps(self, spec: SceneSpec, out_dir: Path, *, job_id: str,
                     progress: ProgressFn, should_stop: StopFn) -> RenderSteps:
        """The render as a generator that yields between steps (after building, after each
        frame) and returns the RenderResult; closing it early still cleans up."""
        ...


UploadListener = Callable[[str, str, str, str], None]  # (job id, local path, key, url)


class OutputStore(Protocol):
    """Object storage for finished outputs (S3/MinIO, or the local folder)."""

    def store(self, job: Job, outputs: list[JobOutput]) -> list[JobOutput]:
        """Return the outputs with `s3_key`/`url` filled. Must not lose local files; may
        raise `StorageUnavailable` after queueing the upload for later."""
        ...

    def retry_pending(self) -> int:
        """Upload what was queued while storage was down; returns how many went up."""
        ...

    def add_upload_listener(self, listener: UploadListener) -> None:
        """Called for each queued upload once it went up (late links for Slack)."""
        ...

    def close(self) -> None:
        ...


class StorageUnavailable(RuntimeError):
    pass


class EventKind(StrEnum):
    """What happened to a job. A StrEnum: it compares equal to, and prints as, its plain string."""

    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STORED = "stored"  # a late object-storage upload went through
    DRAFT = "draft"  # the draft image is ready (message: its path); the final follows (core/draft.py)

    @property
    def is_final(self) -> bool:
        return self in (EventKind.DONE, EventKind.FAILED, EventKind.CANCELLED)


FINAL_EVENTS: dict[JobStatus, EventKind] = {
    JobStatus.DONE: EventKind.DONE, JobStatus.FAILED: EventKind.FAILED, JobStatus.CANCELLED: EventKind.CANCELLED}


@dataclass
class JobEvent:
    kind: EventKind
    job: Job
    progress: RenderProgress | None = None
    message: str = ""


class JobListener(Protocol):
    def on_job_event(self, event: JobEvent) -> None:
        ...


class UserError(ValueError):
    """Bad input: shown to the user as is (CLI exit 2, a Slack message)."""


# ---------------------------------------------------------------------------- the pipeline

@dataclass
class PipelineDeps:
    store: JobStore
    interpreter: SpecInterpreter
    output_dir: Path
    node_id: str
    renderer: SceneRenderer | None = None  # None on a node that cannot render
    analyzer: Analyzer | None = None
    output_store: OutputStore | None = None
    listeners: list[JobListener] = field(default_factory=list)
    lease_s: float = 60.0
    drafts: bool = True  # a fast draft before a slow final (core/draft.py); False: only when asked
    cost_policy: CostPolicy = field(default_factory=CostPolicy)  # render budget tiers (core/cost.py)
    # Capability routing: what this node can render (None: no filter, it claims any job),
    # and what the admin requires of every render job (Settings.require_*).
    capabilities: NodeCapabilities | None = None
    required: JobRequirements = field(default_factory=JobRequirements)
    # Capability tags a render job needs beyond its own options (e.g. "assets:props" for the
    # asset libraries its request names); None: none.
    requirement_tags: Callable[[Job], list[str]] | None = None


def _timed(job: Job, stage: str, start: float) -> None:
    job.timings[stage] = round(job.timings.get(stage, 0.0) + time.perf_counter() - start, 4)


class JobPipeline:
    """What happens to a job. *When*, on which thread and under which lease is the
    dispatcher's business (`core/dispatcher.py`): every store write here is fenced by the
    lease the job copy carries, and a final event is emitted only when its write applied."""

    def __init__(self, deps: PipelineDeps) -> None:
        self.deps = deps
        # The dispatcher keeps the latest progress in memory and writes it with the heartbeat.
        self.progress_hook: Callable[[str, dict[str, Any]], None] | None = None

    # -- events
    def emit(self, kind: EventKind, job: Job, progress: RenderProgress | None = None, message: str = "") -> None:
        event = JobEvent(EventKind(kind), job.copy(), progress, message)
        for listener in list(self.deps.listeners):
            try:
                listener.on_job_event(event)
            except Exception:  # a broken listener must not break a job
                log.exception("job listener failed", extra={"job_id": job.id})

    def _write(self, job: Job, write: str, status: JobStatus | None = None) -> Fenced:
        """A fenced write under the job's own lease (see `JobStore.transition`)."""
        result = self.deps.store.transition(job.lease, write, job, status)
        if result is Fenced.LOST:
            log.warning("lease lost: %s write of job %s dropped (another node holds it now)", write, job.id,
                        extra={"job_id": job.id})
        return result

    # -- intake
    def submit(self, job: Job) -> Job:
        """Validate and enqueue a new job (a database insert: not on Blender's main thread);
        emits `queued`. A job no live node can run (capability routing) is stored failed
        with the reason, and only its final event is emitted: the requester hears why at once."""
        job = self.validate_request(job)
        job = self.fit_known_spec(job)
        self._set_requirements(job)
        reason = self.unrunnable(job.requirements, own=self.own_capabilities())
        if reason:
            job.status, job.error = JobStatus.FAILED, reason
            job = self.deps.store.add(job)
            log.warning("no node can run this job: %s", reason, extra={"job_id": job.id})
            self.announce_final(job)
            return job
        job = self.deps.store.add(job)
        self.emit(EventKind.QUEUED, job)
        return job

    def _set_requirements(self, job: Job) -> None:
        """What a node needs to run the job: its own requirements with the admin's. An
        engine the admin requires is also the engine it renders with."""
        if job.kind is not JobKind.RENDER:
            job.requirements = JobRequirements()
            return
        if self.deps.requirement_tags is not None:
            try:
                extra = self.deps.requirement_tags(job)
            except Exception as exc:  # tags only route the job; the build reports bad assets
                log.warning("could not tell the job's capability tags: %s", exc, extra={"job_id": job.id})
                extra = []
            tags = list(job.options.get("tags") or [])
            if extra and not set(extra) <= set(tags):
                job.options = dict(job.options, tags=sorted(set(tags) | set(extra)))
        own = JobRequirements.of_job(job)
        job.requirements = own.merged(self.deps.required)
        engine = job.requirements.engine
        if engine and job.options.get("engine") != engine:
            if own.engine and own.engine != engine:
                job.warnings.append(f"this farm renders with {engine} (an admin setting), not {own.engine}")
            job.options = dict(job.options, engine=engine)

    def own_capabilities(self) -> NodeCapabilities | None:
        """This node's capabilities when it renders (it counts as a live node: a single-node
        setup routes to itself), else None."""
        return self.deps.capabilities if self.deps.renderer is not None else None

    def unrunnable(self, req: JobRequirements, *, own: NodeCapabilities | None) -> str:
        """Why no live render node can run a job needing `req` ("" when one can, or when it
        cannot be told: a registry that does not answer lets the job wait)."""
        if req.empty:
            return ""
        if own is None and self.deps.renderer is not None and self.deps.capabilities is None:
            return ""  # this node claims without a capability filter: it takes the job
        try:
            # This node's own registry row is replaced by what it knows of itself now.
            nodes = live_render_nodes([n for n in self.deps.store.list_nodes()
                                       if own is None or n.id != self.deps.node_id])
        except Exception as exc:
            log.warning("node registry unavailable; cannot tell which nodes could run a job: %s", exc)
            return ""
        if own is not None:
            nodes.append(own)
        if not nodes:
            # No render node is live at all (a listener started first, a farm restarting):
            # the job waits like any other, and the first node that comes up decides.
            return ""
        return unrunnable_reason(req, nodes)

    @staticmethod
    def validate_request(job: Job) -> Job:
        """The checks `submit` makes before touching the store; raises UserError. No I/O."""
        text = job.request_text.strip()
        if job.kind is JobKind.RENDER and not text and job.spec is None:
            raise UserError("Tell me what to render, e.g. `/render a red cube on a checkered floor, rotating`.")
        if job.kind is JobKind.ANALYZE and not text:
            raise UserError('Give me some text to analyze, e.g. `/analyze "I love this"`.')
        text, warning = fit_request(text)
        if warning:
            job.warnings.append(warning)
        job.request_text = text
        return job

    # -- step 1
    def prepare(self, job: Job) -> Job:
        """Interpret or analyze. Any thread. Raises UserError for bad input."""
        start = time.perf_counter()
        if job.kind is JobKind.ANALYZE:
            if self.deps.analyzer is None:
                raise UserError("analysis is not available on this node")
            job.result = dict(self.deps.analyzer.analyze(job.request_text, correlation_id=job.correlation_id))
            _timed(job, "analyze_s", start)
            return job
        if job.spec is not None and not job.request_text:
            spec, warnings = parse_scene_spec(job.spec)
            job.warnings.extend(warnings)
        else:
            previous: SceneSpec | None = None
            if job.spec is not None:  # a follow-up edit carries the spec it edits
                previous, _ = parse_scene_spec(job.spec)
            # "4 variations of ..." (core/variations.py); "final only"/"quick look" are the draft
            # mode's words (core/draft.py), not the scene's.
            count, scene_text = split_variations(without_draft_mode_words(job.request_text))
            if count:
                job.options = dict(job.options, variations=count)
            try:
                interp = self.deps.interpreter.interpret(scene_text, previous=previous,
                                                         correlation_id=job.correlation_id)
            except SpecError as exc:
                raise UserError(str(exc)) from None
            spec = interp.spec
            job.warnings.extend(interp.warnings)
            job.result.update({"provider": interp.provider, "not_understood": interp.not_understood,
                               "notes": interp.notes})
        spec = self._apply_options(spec, job.options)
        spec = self.fit_to_tier(job, spec)
        job.spec = spec.to_json_dict()
        if job.options.get("variations"):
            job.result["variants"] = variants_of(spec, int(job.options["variations"]))
        _timed(job, "interpret_s", start)
        return job

    # -- the render budget: every spec passes here before it renders (core/cost.py)
    def fit_to_tier(self, job: Job, spec: SceneSpec) -> SceneSpec:
        """`spec` within the requester's cost tier: reduced with a warning that names what
        was reduced, or UserError when it cannot fit. Audited either way."""
        requester = job.requester
        tier, limit = self.deps.cost_policy.tier(requester.source, requester.user_id)
        try:
            fitted = fit_to_tier(spec, limit, tier=tier, cycles_samples=self.deps.cost_policy.cycles_samples)
        except CostRefused as exc:
            self._audit_cost(job, "cost:refused", str(exc), allowed=False)
            raise UserError(str(exc)) from None
        job.result["cost_estimate_s"] = round(fitted.estimate_s, 1)
        if fitted.changed:
            note = describe_fit(fitted, limit)
            if note not in job.warnings:
                job.warnings.append(note)
                self._audit_cost(job, "cost:clamped", f"{note} (estimate {fitted.estimate_s:.0f} s)")
        return fitted.spec

    def fit_known_spec(self, job: Job) -> Job:
        """A render whose spec is known before it is queued (re-render in high quality, get
        the .blend) is fitted to the tier now, so a refusal comes before it queues."""
        if job.kind is JobKind.RENDER and job.spec is not None and not job.request_text:
            try:
                spec, _ = parse_scene_spec(job.spec)
            except SpecError as exc:
                raise UserError(str(exc)) from None
            job.spec = self.fit_to_tier(job, spec).to_json_dict()
        return job

    def _audit_cost(self, job: Job, action: str, detail: str, allowed: bool = True) -> None:
        try:
            self.deps.store.record_audit(actor=job.requester.user_id or job.requester.source, action=action,
                                         target=job.id, detail=detail[:500], allowed=allowed)
        except Exception:  # the audit log never breaks a job
            log.warning("could not write the audit log", exc_info=True)

    @staticmethod
    def _apply_options(spec: SceneSpec, options: dict[str, Any]) -> SceneSpec:
        engine = options.get("engine")
        if engine:
            data = spec.to_json_dict()
            data["output"]["engine"] = engine
            try:
                spec, _ = parse_scene_spec(data, clamp=False)
            except SpecError:
                raise UserError(f"unknown engine {engine!r}: use cycles, eevee or workbench") from None
        return spec

    def start(self, job: Job) -> Fenced:
        """A prepared render job becomes RUNNING (I/O thread, before it waits for the main thread)."""
        result = self._write(job, "running", JobStatus.RUNNING)
        if result is not Fenced.LOST:
            job.status = JobStatus.RUNNING
            self.emit(EventKind.STARTED, job)
        return result

    # -- step 2
    def render(self, job: Job, *, should_stop: StopFn | None = None) -> RenderResult:
        """Blender's main thread only."""
        return drive(self.render_steps(job, should_stop=should_stop))

    def render_steps(self, job: Job, *, should_stop: StopFn | None = None) -> Generator[None, None, RenderResult]:
        """`render`, yielding between frames when the renderer can (the GUI's timer drives it)."""
        if self.deps.renderer is None:
            raise RuntimeError("this node has no renderer")
        assert job.spec is not None, "prepare() first"
        spec = SceneSpec.model_validate(job.spec)
        out_dir = self.job_dir(job)
        out_dir.mkdir(parents=True, exist_ok=True)
        last_emit = [0.0]

        def progress(p: RenderProgress) -> None:
            job.progress = {"stage": p.stage, "frame": p.frame, "frames": p.frames,
                            "elapsed_s": round(p.elapsed_s, 2)}
            if self.progress_hook is not None:
                self.progress_hook(job.id, dict(job.progress))
            now = time.monotonic()
            if now - last_emit[0] >= 0.25 or p.frame == p.frames:  # listeners throttle further
                last_emit[0] = now
                self.emit(EventKind.PROGRESS, job, p)

        def stop() -> str:
            reason = should_stop() if should_stop else ""
            return reason

        start = time.perf_counter()
        if job.result.get("variants"):
            result = yield from self._render_variants(job, out_dir, stop, progress)
            _timed(job, "render_total_s", start)
            job.outputs = list(result.outputs)
            return result
        mode = draft_mode_of(job.options, job.request_text)
        draft, spec = draft_plan(spec, mode if self.deps.drafts or mode is not DraftMode.AUTO else DraftMode.OFF)
        if draft is not None:
            yield from self._render_draft(job, draft, out_dir / "draft", stop)
        result = yield from self.deps.renderer.render_steps(spec, out_dir, job_id=job.id, progress=progress,
                                                           should_stop=stop)
        _timed(job, "render_total_s", start)
        job.timings.update({k: round(v, 4) for k, v in result.timings.items()})
        job.outputs = list(result.outputs)
        return result

    def _render_draft(self, job: Job, draft: SceneSpec, out_dir: Path, stop: StopFn) -> Generator[None, None, None]:
        """The draft before the final: its image is announced at once (DRAFT event); a draft
        that fails only costs the draft (the final still renders)."""
        assert self.deps.renderer is not None
        start = time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            result = yield from self.deps.renderer.render_steps(draft, out_dir, job_id=job.id,
                                                               progress=lambda p: None, should_stop=stop)
        except Exception:
            log.warning("draft render failed; going on with the final", exc_info=True, extra={"job_id": job.id})
            return
        image = next((o for o in result.outputs if o.role in ("image", "poster")), None)
        _timed(job, "draft_s", start)
        if image is not None and not result.stopped:
            job.result["draft"] = image.path
            self.emit(EventKind.DRAFT, job, message=image.path)

    def _render_variants(self, job: Job, out_dir: Path, stop: StopFn,
                         progress: ProgressFn) -> Generator[None, None, RenderResult]:
        """Each stored variant as a draft (core/variations.py), one after the other."""
        assert self.deps.renderer is not None
        outputs: list[JobOutput] = []
        stored = list(job.result["variants"])
        for i, variant in enumerate(stored):
            spec = draft_spec(SceneSpec.model_validate(variant["spec"]))
            folder = out_dir / f"variant_{variant['number']}"
            folder.mkdir(parents=True, exist_ok=True)
            result = yield from self.deps.renderer.render_steps(spec, folder, job_id=job.id,
                                                               progress=lambda p: None, should_stop=stop)
            if result.stopped:
                return RenderResult(outputs=outputs, frames=i, stopped=result.stopped)
            image = next((o for o in result.outputs if o.role in ("image", "poster")), None)
            if image is not None:
                outputs.append(JobOutput("image", image.path, image.content_type, image.size_bytes))
                variant["image"] = image.path
            progress(RenderProgress("rendering", i + 1, len(stored), 0.0))
        return RenderResult(outputs=outputs, frames=len(stored))

    def job_dir(self, job: Job) -> Path:
        return self.deps.output_dir / job.id

    # -- step 3
    def finish(self, job: Job, result: RenderResult | None = None) -> Fenced:
        """Write the spec beside the outputs, store them, set the final status. Any thread.

        The final write is fenced: `Fenced.APPLIED` means this node's result is the job's
        result and the listeners heard it; `LOST` means another node owns the job now and
        this result was dropped; `BUFFERED`/`FAILED` mean the database did not answer and
        the caller must confirm later (`announce_final`)."""
        try:
            if job.kind is JobKind.RENDER and job.spec is not None:
                out_dir = self.job_dir(job)
                out_dir.mkdir(parents=True, exist_ok=True)
                spec_path = out_dir / "spec.json"
                spec_path.write_text(json.dumps({"request": job.request_text, "spec": job.spec,
                                                 "warnings": job.warnings}, indent=2), encoding="utf-8")
                job.outputs.append(JobOutput("spec", str(spec_path), "application/json",
                                             spec_path.stat().st_size))
            if result is not None and not result.stopped and job.kind is JobKind.RENDER \
                    and not any(o.role in ("image", "video") for o in result.outputs):
                # A render that "finished" without a picture is a broken node or build, not a
                # result: fail it rather than post an empty success.
                job.status, job.error = JobStatus.FAILED, "the render finished without producing an image"
                job.result["node_fault"] = True
            elif result is not None and result.stopped:
                partial = any(o.role in ("image", "video") for o in result.outputs)
                if result.stopped == "cancelled":
                    job.status, job.error = JobStatus.CANCELLED, "cancelled"
                elif partial:
                    # A turntable or still cut short by the time limit is still worth posting.
                    job.warnings.append(f"stopped early ({result.stopped}) after {result.frames} frame(s); "
                                        "the result is partial")
                else:
                    job.status, job.error = JobStatus.FAILED, f"stopped: {result.stopped}"
            if job.outputs and self.deps.output_store is not None and not job.status.is_final:
                if self._write(job, "uploading", JobStatus.UPLOADING) is Fenced.LOST:
                    return Fenced.LOST
                job.status = JobStatus.UPLOADING
                start = time.perf_counter()
                try:
                    job.outputs = self.deps.output_store.store(job, job.outputs)
                except StorageUnavailable as exc:
                    job.warnings.append(f"object storage unavailable ({exc}); outputs kept locally, "
                                        "upload queued: the storage link will follow")
                _timed(job, "store_s", start)
            status = job.status if job.status.is_final else JobStatus.DONE
        except Exception as exc:
            log.exception("finishing job failed", extra={"job_id": job.id})
            return self.fail(job, f"could not finish: {exc}")
        return self._final(job, status)

    def _final(self, job: Job, status: JobStatus) -> Fenced:
        job.progress = {}
        written = self._write(job, "final", status)
        if written is not Fenced.LOST:
            job.status = status
        if written is Fenced.APPLIED:
            self.announce_final(job)
        return written

    def announce_final(self, job: Job) -> None:
        """Tell the listeners a job's final state (once its final write is known to have applied)."""
        self.emit(FINAL_EVENTS.get(job.status, EventKind.FAILED), job, message=job.error)

    def release(self, job: Job) -> Fenced:
        """Hand an unfinished job back to the queue (a node stopping): no failure is counted."""
        return self._write(job, "release", JobStatus.QUEUED)

    def output_stored_late(self, job_id: str, local_path: str, key: str, url: str) -> None:
        """A file queued during an object-storage outage is uploaded now: record its key and
        link on the job, and tell listeners (Slack posts the link in the job's thread)."""
        job = self.deps.store.get(job_id)
        if job is None:
            return
        changed = False
        for out in job.outputs:
            if Path(out.path).resolve() == Path(local_path).resolve():
                out.s3_key, out.url = key, url
                changed = True
        if not changed:
            return
        try:
            self.deps.store.set_outputs(job.id, job.outputs)
        except Exception:
            log.exception("could not record the late upload", extra={"job_id": job_id})
        self.emit(EventKind.STORED, job, message=url)

    def fail(self, job: Job, message: str) -> Fenced:
        job.error = message
        return self._final(job, JobStatus.FAILED)
