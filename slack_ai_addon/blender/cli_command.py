"""`blender -b --addons <module> --command slack_ai serve|render "PROMPT"|worker|...` (Blender 4.2+).

Timers never fire in background mode, so a farm node needs its own blocking loop on the
main thread: this command hands its arguments to the add-on's own command line
(`slack_ai_addon.cli`, the code behind `python -m headless_runner` too). Its imports are
relative, so it runs the same as a legacy add-on (`slack_ai_addon`) and as an installed
extension (`bl_ext.<repo>.slack_ai_addon`). On Blender < 4.2 (no register_cli_command) the
same handler is reached with `--python-expr "...cli_command.run_cli([...])"` (see
scripts/farm_node).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

# Blender requires an identifier here ("slack-ai" raises "The command id is not a valid identifier").
COMMAND_NAME = "slack_ai"

_handle: Any = None


def run_cli(argv: Sequence[str]) -> int:
    """The command handler: the add-on's command line, with online access honoured.

    `worker` (render-only farm node) has its own parser; everything else goes through
    `slack_ai_addon.cli.main`.
    """
    import bpy

    argv = list(argv)
    if argv[:1] in (["command"], ["sandbox"]):
        print(f"error: '{argv[0]}' is not available here: it runs against the local Slack stand-in, which "
              f"ships with the repository, not with the add-on (python -m headless_runner {argv[0]} ...)",
              file=sys.stderr)
        return 1
    if not bpy.app.binary_path:
        # The bpy module: our own embedded runtime, with no command line to ask for
        # --online-mode; prepare it as the headless runner does.
        from . import headless

        headless.prepare_module_mode()
    if not getattr(bpy.app, "online_access", True):
        # Blender's rule: no network without online access. The settings loader drops every
        # service off this machine (offline interpreter, local folder, SQLite stand in).
        os.environ["SLACK_AI_LOCAL_ONLY"] = "1"
        print("slack_ai: online access is off, so Slack and cloud services are not used "
              "(start Blender with --online-mode to allow them).", file=sys.stderr)
    from .. import cli

    try:
        if argv[:1] == ["worker"]:
            from ..cli.worker import run_worker

            logging.basicConfig(level="INFO", stream=sys.stderr,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            return run_worker(argv[1:])
        return int(cli.main(argv))
    except SystemExit as exc:  # argparse exits; Blender expects a return code
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except Exception:
        # Blender would print the traceback and still exit 0 on some versions; a farm
        # manager needs the failure in the exit code.
        log.exception("slack_ai command failed")
        return 1


def register() -> None:
    global _handle
    import bpy

    register_cli_command = getattr(bpy.utils, "register_cli_command", None)
    if register_cli_command is None or _handle is not None:
        return  # Blender < 4.2: farm nodes use --python-expr (scripts/farm_node)
    _handle = register_cli_command(COMMAND_NAME, run_cli)


def unregister() -> None:
    global _handle
    import bpy

    if _handle is not None:
        try:
            bpy.utils.unregister_cli_command(_handle)
        finally:
            _handle = None
