"""Set up Blender for work without a window: the bpy module from PyPI and `blender -b`.

`prepare_module_mode()` is what the CLI and farm nodes call before the first render. It is
idempotent and harmless inside a GUI Blender (it only turns on what is off).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy

log = logging.getLogger(__name__)

_prepared = False
_libc: Any = None


def prepare_module_mode(*, online: bool = True) -> dict[str, Any]:
    """Make a window-less Blender ready to build, render and reach the network.

    - Online access: the bpy module starts with `bpy.app.online_access` False, and add-ons
      must honour it, so our own network code would refuse to run. Turn the preference on,
      unless the command line decided (`--offline-mode` / `--online-mode` set
      `online_access_override`): an explicit user choice wins.
    - Cycles: make sure its add-on is enabled (it is in the default startup, but not
      always after `read_homefile(use_empty=True)` with a custom app template).
    Returns what it found and did, for logs and tests.
    """
    global _prepared
    report: dict[str, Any] = {"version": bpy.app.version_string, "background": bool(bpy.app.background)}
    prefs: Any = bpy.context.preferences
    if prefs is None:  # no preferences loaded (should not happen): nothing to set
        return report
    system = getattr(prefs, "system", None)
    if online and system is not None and hasattr(system, "use_online_access"):
        if getattr(bpy.app, "online_access_override", False):
            report["online_access"] = "left to the command line"
        elif not system.use_online_access:
            system.use_online_access = True
            report["online_access"] = "enabled"
        else:
            report["online_access"] = "already on"
    else:
        report["online_access"] = "not applicable (Blender < 4.2)"
    if "cycles" not in prefs.addons:
        try:
            import addon_utils

            addon_utils.enable("cycles", default_set=True)
            report["cycles"] = "enabled"
        except Exception as exc:  # a build without Cycles still renders with Workbench
            report["cycles"] = f"unavailable: {exc}"
    _prepared = True
    log.debug("module mode prepared: %s", report)
    return report


def is_prepared() -> bool:
    return _prepared


def _flush_c_stdio() -> None:
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        _libc.fflush(None)
    except Exception:  # not fatal: at worst some render lines land on stdout
        _libc = False


_blender_log: Path | None = None


def set_blender_log(path: str | Path | None) -> None:
    """Send Blender's render prints to this file (appended) instead of stderr.

    The command-line tools print their own progress; Blender's `Fra:`/`Saved:` lines per
    frame would drown it, but stay useful for debugging, so they go to a log file.
    """
    global _blender_log
    _blender_log = Path(path) if path else None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send Blender's own prints (`Fra:`, `Saved:`, `Video append frame`) to stderr meanwhile
    (or to the file given to `set_blender_log`).

    Blender writes render progress with C printf to file descriptor 1; the CLI's `--json`
    output must be the only thing on stdout. Process-wide while it lasts, so it wraps only
    the render calls. No-op where stdout has no file descriptor (some GUI consoles).
    """
    try:
        sys.stdout.flush()
        out_fd = sys.stdout.fileno()
        err_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    log_fd = -1
    if _blender_log is not None:
        try:
            _blender_log.parent.mkdir(parents=True, exist_ok=True)
            log_fd = os.open(_blender_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            log_fd = -1
    if log_fd < 0 and os.isatty(out_fd):  # an interactive console: nothing to protect
        yield
        return
    saved = os.dup(out_fd)
    try:
        _flush_c_stdio()
        os.dup2(log_fd if log_fd >= 0 else err_fd, out_fd)
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved, out_fd)
        os.close(saved)
        if log_fd >= 0:
            os.close(log_fd)
