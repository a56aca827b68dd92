"""The composition root: the one place that assembles a node from Settings.

It picks the real or embedded adapters (job store, object storage, interpreter, analyzer,
renderer), builds the pipeline and, on demand, the dispatcher, and hands the Slack agent
the small `AgentDeps` it needs. The CLI, farm nodes, the sandbox and the Blender UI all
build their node here, so all of them run the same pipeline. `bpy` is imported only when
a renderer is asked for.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .agent.deps import AgentDeps, NodeActivity
from .blender.render_settings import RenderThreads
from .core.config import Settings
from .core.cost import CostPolicy, SampleRule
from .core.dispatcher import Dispatcher
from .core.jobs import ENGINES, Job, JobRequirements, JobStore, NodeCapabilities, NodeInfo, blender_version_text
from .core.pipeline import JobListener, JobPipeline, PipelineDeps
from .core.scene_spec import parse_scene_spec

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    pipeline: JobPipeline
    store: JobStore
    output_dir: Path
    closers: list[Any] = field(default_factory=list)
    _dispatcher: Dispatcher | None = None
    blender_version: str = ""  # set when a renderer (bpy) is loaded
    render_threads: RenderThreads = field(default_factory=RenderThreads)  # the renderer's thread policy

    def dispatcher(self, *, role: str = "worker", **kwargs: Any) -> Dispatcher:
        """This node's one dispatcher (created on first use). `role` goes into its row of the
        node registry: worker, both (serve), desktop (the Blender UI)."""
        if self._dispatcher is None:
            kwargs.setdefault("stop_grace_s", self.settings.stop_grace_s)
            renders = self.pipeline.deps.renderer is not None
            # A node built without detected capabilities claims unfiltered: it offers every engine.
            caps = self.pipeline.deps.capabilities or NodeCapabilities(engines=ENGINES)
            kwargs.setdefault("node_info", NodeInfo(
                id=self.pipeline.deps.node_id, host=socket.gethostname(), role=role,
                blender_version=self.blender_version or (blender_version_text(caps.blender) if caps.blender else ""),
                engines=",".join(caps.engines) if renders else "", gpu=caps.gpu if renders else "",
                tags=list(caps.tags) if renders else []))
            self._dispatcher = Dispatcher(self.pipeline, heartbeat_s=self.settings.heartbeat_s, **kwargs)
        return self._dispatcher

    def add_listener(self, listener: JobListener) -> None:
        self.pipeline.deps.listeners.append(listener)

    def remove_listener(self, listener: JobListener) -> None:
        try:
            self.pipeline.deps.listeners.remove(listener)
        except ValueError:
            pass

    def agent_deps(self) -> AgentDeps:
        """What the Slack agent gets from this node (it never sees the runtime itself)."""
        # An agent in this process: with render_threads=0 the renderer may leave it a core.
        self.render_threads.agent_attached = True

        def cancel_local(job_id: str) -> None:
            # Only a node that runs jobs has a dispatcher; asking must not create one (it
            # would start a heartbeat thread on a node that only listens).
            if self._dispatcher is not None:
                self._dispatcher.request_cancel(job_id)

        def activity() -> NodeActivity:
            d = self._dispatcher
            if d is None:
                return NodeActivity()
            return NodeActivity(current_job_id=d.current_job_id, jobs_done=d.jobs_done, dispatcher_running=True)

        return AgentDeps(settings=self.settings, store=self.store, node_id=self.pipeline.deps.node_id,
                         submit=self.pipeline.submit, add_listener=self.add_listener,
                         remove_listener=self.remove_listener, cancel_local=cancel_local, activity=activity,
                         blender_version=self.blender_version, cost_policy=self.pipeline.deps.cost_policy)

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.shutdown(wait=True)
        for closer in reversed(self.closers):
            close = getattr(closer, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                log.exception("closing %r failed", closer)


def asset_library_tags() -> list[str]:
    """"assets:<library>" for every asset library this node has (the index's libraries)."""
    from .assets.service import current_index

    return sorted({f"assets:{lib.name.strip().lower()}" for lib in current_index().libraries if lib.name.strip()})


def asset_tags_of_job(job: Job) -> list[str]:
    """The asset libraries a render job needs, as capability tags: from its finished spec
    (edits, re-renders, variants) or, for a request still to be interpreted, from the asset
    phrases in its text. Empty where this node has no libraries configured."""
    from .assets import service

    if not service.current_index().libraries:
        return []
    if job.spec is not None and not job.request_text.strip():
        spec, _warnings = parse_scene_spec(job.spec)
        return service.asset_requirement_tags(spec)
    return service.asset_tags_for_text(job.request_text)


def renderer_sample_rule(with_renderer: bool) -> SampleRule:
    """The samples Cycles really renders for a request (`blender/render_settings.py`: fewer
    where it denoises), for the cost estimate. A process without a renderer (a Slack-only
    node) assumes OpenImageDenoise, which every `bpy` this project ships has."""
    from .blender.render_settings import cycles_settings  # plain Python: no bpy behind it

    oidn = True
    if with_renderer:
        from .blender import compat
        oidn = compat.has_openimagedenoise()

    def rendered(requested: int, pixels: int, animation: bool) -> int:
        return cycles_settings(requested, oidn=oidn, pixels=pixels, animation=animation).samples

    return rendered


def build_runtime(settings: Settings, *, cli: bool, with_renderer: bool = True,
                  store: JobStore | None = None) -> Runtime:
    from .providers import build_analyzer, build_interpreter
    from .storage import open_job_store, open_output_store

    output_dir = settings.resolved_output_dir(cli=cli).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    closers: list[Any] = []
    if store is None:
        store = open_job_store(settings)
        closers.append(store)
    output_store = open_output_store(settings, output_dir)
    closers.append(output_store)
    renderer = None
    blender_version = ""
    render_threads = RenderThreads(setting=settings.render_threads)
    capabilities = None
    # The interpreter first: building it configures the asset libraries this node's tags name.
    interpreter = build_interpreter(settings, store=store)
    if with_renderer:
        from .blender import compat
        from .blender.capabilities import node_capabilities
        from .blender.renderer import BlenderSceneRenderer  # bpy lives behind this import
        renderer = BlenderSceneRenderer(threads=render_threads)
        blender_version = compat.version_string()
        capabilities = node_capabilities(settings.node_gpu, settings.node_tags)
        library_tags = asset_library_tags()
        if library_tags:  # a node that has asset libraries offers them to capability routing
            capabilities = dataclasses.replace(
                capabilities, tags=tuple(sorted(set(capabilities.tags) | set(library_tags))))
        log.info("node capabilities: engines %s, GPU %s, Blender %s, tags %s", ",".join(capabilities.engines),
                 capabilities.gpu or "none", blender_version, ",".join(capabilities.tags) or "none")
    deps = PipelineDeps(
        store=store,
        interpreter=interpreter,
        analyzer=build_analyzer(settings, store=store),
        renderer=renderer,
        output_store=output_store,
        output_dir=output_dir,
        node_id=settings.resolved_node_id(),
        lease_s=settings.lease_s,
        cost_policy=CostPolicy.from_settings(settings, cycles_samples=renderer_sample_rule(with_renderer)),
        capabilities=capabilities,
        required=JobRequirements.from_settings(settings.require_engine, settings.require_gpu,
                                               settings.require_blender),
        requirement_tags=asset_tags_of_job,
    )
    pipeline = JobPipeline(deps)
    output_store.add_upload_listener(pipeline.output_stored_late)
    return Runtime(settings=settings, pipeline=pipeline, store=store, output_dir=output_dir, closers=closers,
                   blender_version=blender_version, render_threads=render_threads)
