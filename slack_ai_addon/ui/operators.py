"""Operators: thin wrappers over ui.state, which calls the same runtime API as the CLI and
Slack (pipeline.submit, dispatcher.drain, store.request_cancel). Errors come back as
reports; nothing here blocks on the network.
"""

from __future__ import annotations

import logging
import os
import subprocess  # noqa: S404 - opens a folder with the platform's file browser
import sys
from pathlib import Path
from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core.pipeline import UserError
from . import state
from .preferences import load_settings_or_report, online_access
from .service_checks import SERVICES

log = logging.getLogger(__name__)

ENGINES = [("DEFAULT", "Default", "The engine from the spec or the preferences"),  # "" would be a separator
           ("workbench", "Workbench", "Fastest: flat shading"),
           ("eevee", "EEVEE", "Real-time engine"),
           ("cycles", "Cycles", "Path tracer")]


class SLACKAI_OT_connect(bpy.types.Operator):
    """Connect this Blender to Slack (Socket Mode) and start taking jobs"""

    bl_idname = "slack_ai.connect"
    bl_label = "Connect"

    def execute(self, context: Any) -> set[str]:
        settings = load_settings_or_report(self, context)
        if settings is None:
            return {"CANCELLED"}
        try:
            refusal = state.connect(settings, online_access=online_access())
        except Exception as exc:
            log.exception("connect failed")
            state.session.last_error = f"{type(exc).__name__}: {exc}"
            self.report({"ERROR"}, f"Could not connect: {type(exc).__name__}")
            return {"CANCELLED"}
        if refusal:
            self.report({"WARNING"}, refusal)
            return {"CANCELLED"}
        ensure_pumps()
        self.report({"INFO"}, "Connecting to Slack")
        return {"FINISHED"}


class SLACKAI_OT_disconnect(bpy.types.Operator):
    """Disconnect from Slack; jobs already claimed here still finish"""

    bl_idname = "slack_ai.disconnect"
    bl_label = "Disconnect"

    def execute(self, context: Any) -> set[str]:
        was_connected = state.session.agent is not None
        state.disconnect()
        self.report({"INFO"}, "Disconnecting from Slack" if was_connected else "Not connected")
        return {"FINISHED"}


class SLACKAI_OT_test_service(bpy.types.Operator):
    """Check this service with the current settings (runs in the background)"""

    bl_idname = "slack_ai.test_service"
    bl_label = "Test Service"

    service: EnumProperty(  # type: ignore[valid-type]
        name="Service", items=[(k, k, v) for k, v in SERVICES.items()])

    def execute(self, context: Any) -> set[str]:
        settings = load_settings_or_report(self, context)
        if settings is None:
            return {"CANCELLED"}
        refusal = state.start_service_check(self.service, settings, online_access=online_access())
        ensure_pumps()
        if refusal:
            self.report({"WARNING"}, refusal)
            return {"CANCELLED"}
        self.report({"INFO"}, f"Testing {self.service}…")
        return {"FINISHED"}


class SLACKAI_OT_test_all(bpy.types.Operator):
    """Check every configured service (in the background)"""

    bl_idname = "slack_ai.test_all"
    bl_label = "Test All Services"

    def execute(self, context: Any) -> set[str]:
        settings = load_settings_or_report(self, context)
        if settings is None:
            return {"CANCELLED"}
        refused = [s for s in SERVICES if state.start_service_check(s, settings, online_access=online_access())]
        ensure_pumps()
        self.report({"INFO"}, f"Testing {len(SERVICES) - len(refused)} service(s)"
                    + (f"; {len(refused)} refused (online access off)" if refused else ""))
        return {"FINISHED"}


class SLACKAI_OT_render_prompt(bpy.types.Operator):
    """Render a prompt on this machine through the same pipeline as /render"""

    bl_idname = "slack_ai.render_prompt"
    bl_label = "Render Prompt"

    prompt: StringProperty(name="Prompt", description="What to render")  # type: ignore[valid-type]
    engine: EnumProperty(name="Engine", items=ENGINES)  # type: ignore[valid-type]

    def execute(self, context: Any) -> set[str]:
        prompt = self.prompt or context.window_manager.slack_ai_prompt
        settings = load_settings_or_report(self, context)
        if settings is None:
            return {"CANCELLED"}
        try:
            job = state.submit_local_render(settings, prompt, engine=self.engine, online_access=online_access())
        except UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:
            log.exception("local render submit failed")
            self.report({"ERROR"}, f"Could not queue the render: {type(exc).__name__}: {exc}")
            return {"CANCELLED"}
        ensure_pumps()
        self.report({"INFO"}, f"Queued job {job.id}")
        return {"FINISHED"}


class SLACKAI_OT_cancel_job(bpy.types.Operator):
    """Cancel the running job (or the oldest queued one)"""

    bl_idname = "slack_ai.cancel_job"
    bl_label = "Cancel Job"

    def execute(self, context: Any) -> set[str]:
        job_id = state.cancel_current()
        if not job_id:
            self.report({"INFO"}, "No job to cancel")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Cancel requested for {job_id}")
        return {"FINISHED"}


class SLACKAI_OT_open_output(bpy.types.Operator):
    """Open a job's output folder (or the output root) in the file browser"""

    bl_idname = "slack_ai.open_output"
    bl_label = "Open Output"

    path: StringProperty(name="Path", description="Folder or file to open; empty: the output root")  # type: ignore[valid-type]

    def execute(self, context: Any) -> set[str]:
        target = self.path
        if not target:
            rt = state.session.runtime
            if rt is not None:
                target = str(rt.output_dir)
            else:
                settings = load_settings_or_report(self, context)
                if settings is None:
                    return {"CANCELLED"}
                target = str(settings.resolved_output_dir(cli=False))
        path = Path(target)
        if path.is_file():
            path = path.parent
        if not path.exists():
            self.report({"WARNING"}, f"{path} does not exist yet")
            return {"CANCELLED"}
        if bpy.app.background:
            # No file browser on a farm node; saying where is the useful answer.
            self.report({"INFO"}, f"Output: {path}")
            return {"FINISHED"}
        try:
            bpy.ops.wm.path_open(filepath=str(path))
        except RuntimeError:
            _open_with_system(path)
        self.report({"INFO"}, f"Opened {path}")
        return {"FINISHED"}


def _open_with_system(path: Path) -> None:
    if sys.platform == "win32":
        os.startfile(str(path))  # type: ignore[attr-defined]  # noqa: S606 - a local folder
    else:
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        subprocess.Popen([opener, str(path)])  # noqa: S603 - fixed opener, local path


def ensure_pumps(first_interval: float = 0.0) -> None:
    """The one place the timer pumps are registered: at add-on start, and again whenever
    something is started from the UI (a later register or a reload may have removed them).
    Adding a pump or starting the timer twice is a no-op."""
    from ..blender import timer_driver
    from . import ui_pump

    timer_driver.add_pump("ui", ui_pump)
    timer_driver.add_pump("dispatcher", state.dispatcher_pump)
    timer_driver.start(first_interval=first_interval)


classes = (
    SLACKAI_OT_connect,
    SLACKAI_OT_disconnect,
    SLACKAI_OT_test_service,
    SLACKAI_OT_test_all,
    SLACKAI_OT_render_prompt,
    SLACKAI_OT_cancel_job,
    SLACKAI_OT_open_output,
)
register, unregister = bpy.utils.register_classes_factory(classes)
