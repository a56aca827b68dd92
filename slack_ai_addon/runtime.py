"""Assemble the pipeline from Settings: the one place that picks real or embedded adapters.

Used by the CLI, farm nodes, the sandbox and the Blender UI, so all of them run the same
pipeline. `bpy` is imported only when a renderer is asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.config import Settings
from .core.dispatcher import Dispatcher
from .core.jobs import JobStore
from .core.pipeline import JobListener, JobPipeline, PipelineDeps

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    pipeline: JobPipeline
    store: JobStore
    output_dir: Path
    closers: list[Any] = field(default_factory=list)
    _dispatcher: Dispatcher | None = None

    def dispatcher(self, **kwargs: Any) -> Dispatcher:
        if self._dispatcher is None:
            kwargs.setdefault("stop_grace_s", self.settings.stop_grace_s)
            self._dispatcher = Dispatcher(self.pipeline, heartbeat_s=self.settings.heartbeat_s, **kwargs)
        return self._dispatcher

    def add_listener(self, listener: JobListener) -> None:
        self.pipeline.deps.listeners.append(listener)

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
    if with_renderer:
        from .blender.renderer import BlenderSceneRenderer  # bpy lives behind this import
        renderer = BlenderSceneRenderer()
    deps = PipelineDeps(
        store=store,
        interpreter=build_interpreter(settings, store=store),
        analyzer=build_analyzer(settings, store=store),
        renderer=renderer,
        output_store=output_store,
        output_dir=output_dir,
        node_id=settings.resolved_node_id(),
        lease_s=settings.lease_s,
    )
    pipeline = JobPipeline(deps)
    output_store.add_upload_listener(pipeline.output_stored_late)
    return Runtime(settings=settings, pipeline=pipeline, store=store, output_dir=output_dir, closers=closers)
