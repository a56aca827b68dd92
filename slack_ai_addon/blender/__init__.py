"""The bpy side: scene builder, renderer, version compat, headless setup.

Importing this package imports nothing from bpy; import the submodules you need
(`from slack_ai_addon.blender.renderer import BlenderSceneRenderer`).
"""
