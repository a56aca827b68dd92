"""Blender UI: preferences, operators, the sidebar panel, and the drain timer's pumps.

Registered by the package's `register()`; sub-modules register in order and unregister in
reverse. `unregister()` leaves nothing behind: timers, threads, classes, properties.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

AUTO_CONNECT_DELAY_S = 1.0  # after startup settles; never inside register() (bpy.data is restricted there)


def _modules() -> list[Any]:
    from . import operators, panels, preferences

    return [preferences, operators, panels]


def _redraw() -> None:
    import bpy

    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", ()):
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


def ui_pump(budget_s: float) -> bool:
    """Apply thread messages; redraw the panels when something changed or a job runs."""
    from . import state

    changed = state.ui_pump(budget_s)
    if changed or state.session.changed or state.session.current_job_id:
        state.session.changed = False
        _redraw()
    return changed


def _auto_connect() -> None:
    """One-shot timer: connect if the preference asks for it. Returns None (runs once)."""
    import bpy

    from . import preferences

    try:
        prefs = preferences.get_prefs(bpy.context)
        if prefs is not None and prefs.auto_connect:
            bpy.ops.slack_ai.connect()
    except Exception:  # a timer must not raise
        log.exception("auto-connect failed")
    return None


def register() -> None:
    import bpy

    from . import operators

    for module in _modules():
        module.register()
    operators.ensure_pumps(first_interval=0.5)
    if not bpy.app.timers.is_registered(_auto_connect):
        # persistent: Blender drops other timers when it starts by loading a .blend file.
        bpy.app.timers.register(_auto_connect, first_interval=AUTO_CONNECT_DELAY_S, persistent=True)


def unregister() -> None:
    import bpy

    from ..blender import timer_driver
    from . import secrets, state

    if bpy.app.timers.is_registered(_auto_connect):
        bpy.app.timers.unregister(_auto_connect)
    timer_driver.stop()
    state.shutdown()
    for module in reversed(_modules()):
        module.unregister()
    secrets.reset_secret_store()
