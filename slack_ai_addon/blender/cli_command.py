"""`blender -b --addons <module> --command slack_ai serve|render "PROMPT"|...` (Blender 4.2+).

Timers never fire in background mode, so a farm node needs its own blocking loop on the
main thread: this command hands its arguments to `headless_runner.cli.main`, the same
entry point as `python -m headless_runner`. On Blender < 4.2 (no register_cli_command) the
same thing is reached with `--python-expr "import headless_runner.cli as c; c.main([...])"`
(see scripts/farm_node); `ensure_headless_runner_importable()` makes that import work.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

# Blender requires an identifier here ("slack-ai" raises "The command id is not a valid identifier").
COMMAND_NAME = "slack_ai"
ADDON_PACKAGE = __package__.rpartition(".")[0]  # slack_ai_addon, or bl_ext.<repo>.slack_ai_addon
PUBLIC_NAME = "slack_ai_addon"

_handle: Any = None
_added_paths: list[str] = []


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import `alias[.x]` as the already-importable `real[.x]`: the very same module objects.

    In an installed extension the package is `bl_ext.<repo>.slack_ai_addon` while
    headless_runner (shipped inside it) imports `slack_ai_addon.core...` and
    `headless_runner.oneshot` by their public names. Copying modules under a second name
    would give two `JobKind` enums that never compare equal; aliasing gives one.
    """

    def __init__(self, alias: str, real: str) -> None:
        self.alias = alias
        self.real = real
        self._specs: dict[str, Any] = {}

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != self.alias and not fullname.startswith(self.alias + "."):
            return None
        real_name = self.real + fullname[len(self.alias):]
        real_spec = importlib.util.find_spec(real_name)
        if real_spec is None:
            return None
        return importlib.util.spec_from_loader(fullname, self,
                                               is_package=real_spec.submodule_search_locations is not None)

    def create_module(self, spec: Any) -> ModuleType:
        module = importlib.import_module(self.real + spec.name[len(self.alias):])
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system set __spec__ to the alias spec; the real one keeps reload and
        # relative imports pointing at the real module.
        real_spec = self._specs.pop(module.__spec__.name if module.__spec__ else "", None)
        if real_spec is not None:
            module.__spec__ = real_spec


def _install_alias(alias: str, real: str) -> None:
    if alias == real or any(isinstance(f, _AliasFinder) and f.alias == alias for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _AliasFinder(alias, real))


def ensure_headless_runner_importable() -> None:
    """Make `import headless_runner` and `import slack_ai_addon` work in every layout:

    - repository checkout (legacy add-on symlinked into scripts/addons): the repo root goes
      on sys.path (legacy add-ons may do that; extensions may not, hence the next cases);
    - installed extension: headless_runner ships inside the package; both names are aliased.
    """
    pkg_dir = Path(__file__).resolve().parent.parent
    _install_alias(PUBLIC_NAME, ADDON_PACKAGE)
    if importlib.util.find_spec("headless_runner") is not None:
        return
    if (pkg_dir / "headless_runner" / "__init__.py").is_file():
        _install_alias("headless_runner", ADDON_PACKAGE + ".headless_runner")
        return
    repo = pkg_dir.parent
    if (repo / "headless_runner" / "__init__.py").is_file() and not ADDON_PACKAGE.startswith("bl_ext."):
        sys.path.append(str(repo))
        _added_paths.append(str(repo))


def _remove_import_helpers() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AliasFinder)]
    while _added_paths:
        path = _added_paths.pop()
        if path in sys.path:
            sys.path.remove(path)


def run_worker(argv: Sequence[str]) -> int:
    """`worker`: drain the shared job table with no Slack intake, until SIGINT/SIGTERM.

    A farm node that only renders: jobs arrive in the database from the nodes that talk to
    Slack, and with SLACK_BOT_TOKEN set this node answers in each job's Slack thread itself.
    `--idle-exit S` stops after S seconds with nothing to do (tests, batch nodes). On
    SIGTERM a running render gets `stop_grace_s` to finish, then it is handed back.
    """
    import argparse
    import signal
    import threading

    from ..core.config import ConfigError, load_settings
    from ..core.dispatcher import run_headless
    from ..runtime import build_runtime
    from . import headless

    parser = argparse.ArgumentParser(prog="slack_ai worker",
                                     description="render-only farm node: drain the shared job table")
    parser.add_argument("--idle-exit", type=float, default=0.0, help="exit after this many idle seconds (0: never)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per drain (default 0.5)")
    args = parser.parse_args(list(argv))
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    headless.prepare_module_mode()
    runtime = build_runtime(settings, cli=True)
    replies = None
    if settings.slack_bot_token:
        from ..agent.replies import ThreadReplies

        replies = ThreadReplies(runtime)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    dispatcher = runtime.dispatcher()
    log.info("worker %s draining %s%s", settings.resolved_node_id(),
             settings.resolved_database_url().split(":")[0], "; answering in Slack threads" if replies else "")
    try:
        run_headless(dispatcher, stop, idle_exit_s=args.idle_exit, budget_s=args.budget)
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: installed from C (Blender's own); cannot be restored from Python
                signal.signal(sig, handler)
        if replies is not None:
            replies.close()
        runtime.close()
    print(f"worker: {dispatcher.jobs_done} job(s) rendered or finished", file=sys.stderr)
    return 0


def run_cli(argv: Sequence[str]) -> int:
    """The command handler: `headless_runner.cli.main(argv)`, with online access honoured.

    `worker` is handled here (render-only farm node); everything else is the runner's.
    """
    import bpy

    argv = list(argv)
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
    if argv[:1] == ["worker"]:
        logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return run_worker(argv[1:])
    ensure_headless_runner_importable()
    from headless_runner import cli

    try:
        return int(cli.main(list(argv)))
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

    if not ADDON_PACKAGE.startswith("bl_ext."):
        # Legacy add-on from a checkout: `--python-expr "import headless_runner.cli ..."`
        # (the farm entry point on Blender < 4.2) needs the repository on the path.
        ensure_headless_runner_importable()

    register_cli_command = getattr(bpy.utils, "register_cli_command", None)
    if register_cli_command is None or _handle is not None:
        return  # Blender < 4.2: farm nodes use --python-expr (scripts/farm_node)
    _handle = register_cli_command(COMMAND_NAME, run_cli)


def unregister() -> None:
    global _handle
    import bpy

    _remove_import_helpers()
    if _handle is not None:
        try:
            bpy.utils.unregister_cli_command(_handle)
        finally:
            _handle = None
