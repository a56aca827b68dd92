"""3D View > Sidebar > Slack AI: connection, this node, the running job, recent jobs, and a
local render box. Drawing only reads ui.state; the drain timer keeps it fresh.
"""

from __future__ import annotations

import time
from typing import Any

import bpy

from . import state
from .preferences import get_prefs, online_access

STATE_ICONS = {"connected": "CHECKMARK", "connecting": "TIME", "reconnecting": "FILE_REFRESH",
               "offline": "UNLINKED", "error": "ERROR", "refused": "CANCEL"}
STATUS_ICONS = {"done": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL", "running": "RENDER_STILL",
                "queued": "SORTTIME", "claimed": "TIME", "uploading": "EXPORT"}


def _ago(ts: float) -> str:
    s = max(0, int(time.time() - ts))
    return f"{s}s ago" if s < 90 else f"{s // 60}m ago" if s < 5400 else time.strftime("%H:%M", time.localtime(ts))


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Slack AI"


class SLACKAI_PT_main(_SidebarPanel, bpy.types.Panel):
    bl_label = "Slack AI"
    bl_idname = "SLACKAI_PT_main"

    def draw(self, context: Any) -> None:
        layout = self.layout
        conn, detail = state.connection_state()
        col = layout.column(align=True)
        col.label(text=f"Slack: {conn}", icon=STATE_ICONS.get(conn, "QUESTION"))
        if detail:
            for line in _wrap(detail, 30):
                col.label(text=line)
        if not online_access():
            col.label(text="Online access is off", icon="ERROR")
        row = layout.row(align=True)
        if state.session.agent is None:
            row.operator("slack_ai.connect", icon="LINKED")
        else:
            row.operator("slack_ai.disconnect", icon="UNLINKED")
        prefs = get_prefs(context)
        if prefs is not None:
            layout.prop(prefs, "auto_connect")
        col = layout.column(align=True)
        col.label(text=f"Role: {state.node_role()}")
        queued = state.queue_length()
        col.label(text=f"Queue: {queued if queued >= 0 else 'unavailable'}")
        if state.session.last_error:
            col.label(text=state.session.last_error[:60], icon="ERROR")


class SLACKAI_PT_current(_SidebarPanel, bpy.types.Panel):
    bl_label = "Running Job"
    bl_parent_id = "SLACKAI_PT_main"

    def draw(self, context: Any) -> None:
        layout = self.layout
        row = state.session.jobs.get(state.session.current_job_id)
        if row is None:
            layout.label(text="Nothing running")
            return
        layout.label(text=row.text or row.job_id, icon="RENDER_STILL")
        if hasattr(layout, "progress"):  # Blender 4.0+: a real progress bar
            layout.progress(factor=row.progress, type="BAR", text=f"{row.job_id}  {int(row.progress * 100)}%")
        else:
            layout.label(text=f"{row.job_id}: {int(row.progress * 100)}%")
        layout.operator("slack_ai.cancel_job", icon="CANCEL")


class SLACKAI_PT_recent(_SidebarPanel, bpy.types.Panel):
    bl_label = "Recent Jobs"
    bl_parent_id = "SLACKAI_PT_main"

    def draw(self, context: Any) -> None:
        layout = self.layout
        rows = state.recent_jobs()
        if not rows:
            layout.label(text="No jobs yet")
        for job in rows:
            box = layout.box()
            line = box.row()
            line.label(text=f"{job.status}  {_ago(job.updated_at)}", icon=STATUS_ICONS.get(job.status, "DOT"))
            if job.output_dir:
                op = line.operator("slack_ai.open_output", text="", icon="FILEBROWSER")
                op.path = job.first_output or job.output_dir
            box.label(text=job.text[:48] or job.job_id)
            if job.error:
                box.label(text=job.error[:60], icon="ERROR")
        layout.operator("slack_ai.open_output", text="Open Output Folder", icon="FILE_FOLDER").path = ""


class SLACKAI_PT_local(_SidebarPanel, bpy.types.Panel):
    bl_label = "Render Locally"
    bl_parent_id = "SLACKAI_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.prop(context.window_manager, "slack_ai_prompt", text="")
        op = layout.operator("slack_ai.render_prompt", icon="RENDER_STILL")
        op.prompt = context.window_manager.slack_ai_prompt


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines[:4]


classes = (SLACKAI_PT_main, SLACKAI_PT_current, SLACKAI_PT_recent, SLACKAI_PT_local)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register() -> None:
    # A window-manager property: the prompt is UI state, never saved into the user's .blend.
    bpy.types.WindowManager.slack_ai_prompt = bpy.props.StringProperty(
        name="Prompt", description="What to render, as you would type after /render",
        default="a red cube on a checkered floor")
    _register_classes()


def unregister() -> None:
    _unregister_classes()
    del bpy.types.WindowManager.slack_ai_prompt
