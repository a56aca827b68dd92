"""Slack AI render agent: a Blender add-on that hosts a Slack agent.

Only registration lives here. Importing this package must not import bpy, so the pure
parts (core, agent, providers, storage) can be used and tested without Blender.

Two ways to load it (docs/BLENDER_RULES.md, "Extension or legacy add-on"): as an extension
(module `bl_ext.<repo>.slack_ai_addon`, dependencies from the manifest's wheels) or as a
legacy add-on (module `slack_ai_addon`, Blender 3.4+, dependencies from a vendored folder).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

bl_info = {
    "name": "Slack AI Render Agent",
    "author": "Slack AI add-on team",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D View > Sidebar > Slack AI; Preferences > Add-ons",
    "description": "Answer /render and /analyze from Slack with this Blender",
    "category": "System",
}

log = logging.getLogger(__name__)

_added_paths: list[str] = []


def _vendor_dirs() -> list[Path]:
    """Legacy add-on only: folders of dependencies installed with `pip install --target`.

    Extensions get their wheels installed by Blender and must not touch sys.path.
    """
    if __package__.startswith("bl_ext."):
        return []
    candidates = [os.environ.get("SLACK_AI_VENDOR_DIR", ""), str(Path(__file__).parent / "_vendor")]
    return [Path(c) for c in candidates if c and Path(c).is_dir()]


def _add_vendor_paths() -> None:
    for folder in _vendor_dirs():
        path = str(folder.resolve())
        if path not in sys.path:
            # In front: Debian's dist-packages may hold older urllib3/requests than ours need.
            sys.path.insert(0, path)
            _added_paths.append(path)


def register() -> None:
    _add_vendor_paths()
    from . import ui
    from .blender import cli_command

    ui.register()
    cli_command.register()


def unregister() -> None:
    from . import ui
    from .blender import cli_command

    cli_command.unregister()
    ui.unregister()
    while _added_paths:
        path = _added_paths.pop()
        if path in sys.path:
            sys.path.remove(path)
