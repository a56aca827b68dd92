"""The add-on registers as a legacy add-on in real bpy 5.0 and unregisters without leftovers,
three times in a row (classes, timers, handlers, threads, properties, the CLI command)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402  (only importable once bpy is)

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
ADDON = "slack_ai_addon"




def _handler_counts() -> dict[str, int]:
    return {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
            if not name.startswith("_") and isinstance(getattr(bpy.app.handlers, name), list)}


def _our_threads(timeout_s: float = 3.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        names = [t.name for t in threading.enumerate() if t.name.startswith("slackai")]
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.05)


def test_enable_disable_three_times_leaves_nothing(user_dirs: Path) -> None:
    handlers_before = _handler_counts()
    meta_path_before = len(sys.meta_path)
    for round_no in range(3):
        mod = addon_utils.enable(ADDON, default_set=True, handle_error=None)
        assert mod is not None, f"round {round_no}: enable failed"
        from slack_ai_addon.blender import cli_command, timer_driver
        from slack_ai_addon.ui import state

        assert ADDON in bpy.context.preferences.addons
        assert hasattr(bpy.types, "SLACKAI_PT_main")
        assert hasattr(bpy.ops.slack_ai, "render_prompt")
        assert bpy.app.timers.is_registered(timer_driver.tick)
        assert timer_driver.pumps() == ["ui", "dispatcher"]
        assert cli_command._handle is not None  # Blender 5.0 has register_cli_command

        # Start a thread the way the Test button does; unregister must not leave it behind.
        assert bpy.ops.slack_ai.test_service(service="database") == {"FINISHED"}

        addon_utils.disable(ADDON, default_set=True, handle_error=None)
        assert ADDON not in bpy.context.preferences.addons
        for cls in ("SLACKAI_PT_main", "SLACKAI_PT_recent", "SLACKAI_OT_connect", "SLACKAI_AddonPreferences"):
            assert not hasattr(bpy.types, cls), f"round {round_no}: {cls} still registered"
        assert not hasattr(bpy.types.WindowManager, "slack_ai_prompt")
        assert not bpy.app.timers.is_registered(timer_driver.tick)
        from slack_ai_addon import ui

        assert not bpy.app.timers.is_registered(ui._auto_connect)
        assert timer_driver.pumps() == []
        assert cli_command._handle is None
        assert state.session.runtime is None and state.session.agent is None
        assert _handler_counts() == handlers_before
        assert len(sys.meta_path) == meta_path_before
        assert _our_threads() == []


def test_register_touches_no_network_and_defers_auto_connect(user_dirs: Path) -> None:
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    try:
        from slack_ai_addon import ui
        from slack_ai_addon.ui import state

        # Auto-connect is a one-shot timer, never work inside register().
        assert bpy.app.timers.is_registered(ui._auto_connect)
        assert state.session.agent is None and state.session.runtime is None
        assert [t.name for t in threading.enumerate() if t.name.startswith("slackai")] == []
    finally:
        addon_utils.disable(ADDON, default_set=True, handle_error=None)
