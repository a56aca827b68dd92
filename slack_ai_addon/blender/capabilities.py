"""What this Blender can render: its engines, its GPU, its version (capability routing).

Called once when a node is built, on the main thread (Cycles' device list is read through
the add-on preferences, which is bpy state). Everything is detected, never assumed: an
engine counts when the scene accepts it, and a GPU when Cycles lists a non-CPU device.
"""

from __future__ import annotations

import logging
from typing import Any

import bpy

from ..core.jobs import ENGINES, NodeCapabilities, blender_version_number, capability_tags
from . import compat
from .render_settings import gpu_drivers_present

log = logging.getLogger(__name__)

# Cycles' compute backends, best first; the first with a device names the node's GPU.
_GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")


def available_engines() -> tuple[str, ...]:
    """The engines (cycles, eevee, workbench) this build's scene accepts."""
    scene: Any = bpy.context.scene if bpy.context.scene is not None else bpy.data.scenes[0]
    found = []
    for engine in ENGINES:
        try:
            compat.engine_id(scene, engine)
        except (RuntimeError, ValueError):
            continue
        found.append(engine)
    return tuple(found)


def detect_gpu() -> str:
    """The name of the first GPU Cycles can render on ("" when none). Loading the device
    list initialises the GPU drivers, so this is done once per node, and only where a driver
    library is installed."""
    if not gpu_drivers_present():
        return ""
    try:
        addon = bpy.context.preferences.addons.get("cycles")
        if addon is None:
            return ""
        prefs = addon.preferences
        for backend in _GPU_BACKENDS:
            try:
                devices = prefs.get_devices_for_type(backend)
            except (TypeError, ValueError, AttributeError):
                continue  # a backend this build does not know
            for device in devices:
                if getattr(device, "type", "CPU") != "CPU":
                    return f"{device.name} ({backend})"
    except Exception as exc:  # a driver that fails to load means: no GPU here
        log.warning("GPU detection failed; this node counts as CPU only: %s", exc)
    return ""


def node_capabilities(node_gpu: str = "", node_tags: str = "") -> NodeCapabilities:
    """This node's capabilities. `node_gpu` (Settings.node_gpu): "" detects, "none" says
    there is none, anything else names the GPU; `node_tags` is the comma list of tags."""
    setting = node_gpu.strip()
    gpu = detect_gpu() if not setting else "" if setting.lower() == "none" else setting
    return NodeCapabilities(engines=available_engines(), gpu=gpu,
                            blender=blender_version_number(compat.version_string()), tags=capability_tags(node_tags))
