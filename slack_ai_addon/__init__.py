"""Slack AI render agent: a Blender add-on that hosts a Slack agent.

Only registration lives here. Importing this package must not import bpy, so the pure
parts (core, agent, providers, storage) can be used and tested without Blender.
"""

bl_info = {
    "name": "Slack AI Render Agent",
    "author": "Slack AI add-on team",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D View > Sidebar > Slack AI; Preferences > Add-ons",
    "description": "Answer /render and /analyze from Slack with this Blender",
    "category": "System",
}


def register() -> None:
    from . import ui

    ui.register()


def unregister() -> None:
    from . import ui

    ui.unregister()
