"""Draw the add-on's sidebar panel and preferences in a real Blender UI and save screenshots.

The PyPI bpy has no UI, so this runs in a GUI Blender under a virtual X server:

    tools/screenshot_ui.py --run            # does the setup below, writes docs/img/*.png

which amounts to

    xvfb-run -a -s "-screen 0 1500x1500x24" blender --factory-startup EMPTY.blend \
        --window-geometry 0 0 1500 1500 --python tools/screenshot_ui.py

Inside Blender it enables the legacy add-on from this checkout (private user folders; a
demo token that goes to a temporary secrets file), renders one real tiny job from the panel
(timers do fire in the GUI), tests the database service, then saves the 3D View with the
Slack AI sidebar and the add-on's preferences. Blender's Python sidebar tabs (Tool, View)
are unregistered in this process and the Slack AI tab is selected with a Ctrl+wheel sent
by xdotool (3.4 has no API for the active tab). Needs xvfb-run and xdotool.
"""

# ruff: noqa: S603, S607 - a developer tool that runs blender, xvfb-run and xdotool with fixed arguments

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "img"
SIZE = (1500, 1500)


def run_outside_blender() -> int:
    blender = os.environ.get("BLENDER") or "blender"
    tmp = Path(tempfile.mkdtemp(prefix="slackai-shot-"))
    (tmp / "scripts" / "addons").mkdir(parents=True)
    os.symlink(REPO / "slack_ai_addon", tmp / "scripts" / "addons" / "slack_ai_addon")
    env = dict(os.environ, BLENDER_USER_SCRIPTS=str(tmp / "scripts"), BLENDER_USER_CONFIG=str(tmp / "config"),
               SLACK_AI_SECRETS_FILE=str(tmp / "secrets.json"), XDG_DATA_HOME=str(tmp / "data"),
               SLACK_AI_VENDOR_DIR=os.environ.get("SLACK_AI_VENDOR_DIR", str(REPO / "build" / "vendor-py311")))
    empty = tmp / "empty.blend"  # opening a file skips the splash screen
    subprocess.run([blender, "-b", "--factory-startup", "--python-expr",
                    f"import bpy; bpy.ops.wm.save_as_mainfile(filepath={str(empty)!r})"],
                   check=True, env=env, capture_output=True)
    cmd = ["xvfb-run", "-a", "-s", f"-screen 0 {SIZE[0]}x{SIZE[1]}x24", blender, "--factory-startup", str(empty),
           "--window-geometry", "0", "0", str(SIZE[0]), str(SIZE[1]), "--python", str(Path(__file__).resolve())]
    return subprocess.run(cmd, env=env, timeout=300).returncode


def run_inside_blender() -> None:
    import addon_utils
    import bpy

    addon_utils.enable("slack_ai_addon", default_set=True)
    from slack_ai_addon.ui import state

    prefs = bpy.context.preferences.addons["slack_ai_addon"].preferences
    prefs.slack_bot_token = "xoxb-demo-not-a-real-token"  # noqa: S105 - shown masked in the picture
    prefs.provider_order = "openai,offline"
    bpy.context.window_manager.slack_ai_prompt = "a red cube and a blue sphere on a checkered floor"

    for cls in list(bpy.types.Panel.__subclasses__()):
        if (getattr(cls, "bl_space_type", "") == "VIEW_3D" and getattr(cls, "bl_region_type", "") == "UI"
                and getattr(cls, "bl_category", "") != "Slack AI"):
            try:
                bpy.utils.unregister_class(cls)
            except RuntimeError:
                pass

    steps = iter(["start", "tab", "wait", "sidebar", "expand", "prefs", "quit"])
    current = {"step": next(steps), "waited": 0}

    def window_override() -> dict:
        win = bpy.context.window_manager.windows[0]
        area = max(win.screen.areas, key=lambda a: a.width * a.height)
        return {"window": win, "screen": win.screen, "area": area,
                "region": next(r for r in area.regions if r.type == "WINDOW")}

    def step() -> float | None:
        s = current["step"]
        if s == "start":
            ov = window_override()
            view = next(a for a in ov["screen"].areas if a.type == "VIEW_3D")
            view.spaces.active.show_region_ui = True
            current["view"] = view
            with bpy.context.temp_override(**ov):
                bpy.ops.slack_ai.test_service(service="database")
                bpy.ops.slack_ai.render_prompt(prompt="a red cube on a checkered floor", engine="workbench")
                bpy.ops.slack_ai.connect()  # no app token: shows the refusal reason
        elif s == "tab":
            # Blender 3.4 has no API for the active sidebar tab (Item, a C panel, stays first):
            # click the Slack AI tab (second in the strip at the sidebar's right edge), as a user would.
            win = bpy.context.window_manager.windows[0]
            sidebar = next(r for r in current["view"].regions if r.type == "UI")
            top = win.height - (sidebar.y + sidebar.height)
            x, y = sidebar.x + sidebar.width - 10, top + 74
            for args in (["mousemove", str(x - 40), str(y)], ["mousemove", str(x), str(y)], ["click", "1"]):
                subprocess.run(["xdotool", *args], check=False, timeout=10)
                time.sleep(0.2)
        elif s == "wait":
            rt = state.session.runtime
            busy = rt is None or not rt.dispatcher().idle() or state.session.current_job_id
            current["waited"] += 1
            if busy and current["waited"] < 120:
                return 0.5
        elif s == "sidebar":
            ov = window_override()
            with bpy.context.temp_override(**ov):
                bpy.ops.screen.screenshot_area(filepath=str(OUT / "sidebar.png"), check_existing=False)
            ov["area"].type = "PREFERENCES"
            bpy.context.preferences.active_section = "ADDONS"
            bpy.context.window_manager.addon_search = "Slack AI"
        elif s == "expand":
            # The add-on list draws from its own module cache; click the row's arrow instead.
            win = bpy.context.window_manager.windows[0]
            area = window_override()["area"]
            x, y = area.x + 189, win.height - (area.y + area.height) + 102
            for args in (["mousemove", str(x + 30), str(y)], ["mousemove", str(x), str(y)], ["click", "1"]):
                subprocess.run(["xdotool", *args], check=False, timeout=10)
                time.sleep(0.2)
        elif s == "prefs":
            ov = window_override()
            with bpy.context.temp_override(**ov):
                bpy.ops.screen.screenshot_area(filepath=str(OUT / "preferences.png"), check_existing=False)
        elif s == "quit":
            bpy.ops.wm.quit_blender()
            return None
        current["step"] = next(steps)
        return 1.5

    OUT.mkdir(parents=True, exist_ok=True)
    bpy.app.timers.register(step, first_interval=2.0)


if __name__ == "__main__":
    if "bpy" in sys.modules or "--run" not in sys.argv:
        run_inside_blender()
    else:
        sys.exit(run_outside_blender())
