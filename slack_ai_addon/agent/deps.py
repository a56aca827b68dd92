"""What the Slack agent needs from the node it runs on, and nothing more.

The composition root (`runtime.py`) builds one `AgentDeps`; the agent never sees the
runtime, the pipeline's internals or the dispatcher. Everything here is plain data or a
callable that is safe to call from the agent's threads (none of them touches bpy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..core.config import Settings
from ..core.cost import CostPolicy
from ..core.jobs import Job, JobStore
from ..core.pipeline import JobListener


@dataclass(frozen=True)
class NodeActivity:
    """This node's own work, as its dispatcher last saw it (memory only)."""

    current_job_id: str = ""
    jobs_done: int = 0
    dispatcher_running: bool = False


@dataclass
class AgentDeps:
    settings: Settings
    store: JobStore  # also an ActivityRecorder (history rows)
    node_id: str
    submit: Callable[[Job], Job]  # validate + insert + "queued" event; raises UserError for bad input
    add_listener: Callable[[JobListener], None]
    remove_listener: Callable[[JobListener], None]
    cancel_local: Callable[[str], None]  # stop a job this node is running, at once
    activity: Callable[[], NodeActivity] = field(default=NodeActivity)
    blender_version: str = ""  # "" when this process has no Blender
    cost_policy: CostPolicy | None = None  # the pipeline's render budget (None: from settings)


class ProvidesAgentDeps(Protocol):
    """A node that can hand the agent its dependencies (the runtime)."""

    def agent_deps(self) -> AgentDeps:
        ...
