"""The command line that ships with the add-on: argument parsing and dispatch.

Two entries reach it: `python -m headless_runner ...` (the repository's command line, which
adds the development subcommands `command` and `sandbox` to this table) and Blender's
`blender -b --addons <module> --command slack_ai ...` (`blender/cli_command.py`). Every
import here is relative, so the same code runs as `slack_ai_addon` (venv, legacy add-on) and
as `bl_ext.<repo>.slack_ai_addon` (installed extension).

Each subcommand lives in its own module and exposes `add_arguments(parser)` and
`run(args) -> int` (or `add_<name>_arguments` / `run_<name>` when one module has several).

Exit codes: 0 done, 1 failure, 2 bad input (message on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Mapping, Sequence

# name -> (module, help). A module name starting with "." is one of this package's; others
# are absolute (headless_runner's development subcommands).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "render": (".oneshot", "render one prompt end to end"),
    "analyze": (".oneshot", "analyze one text (sentiment and more)"),
    "serve": (".serve", "run the Slack agent and the job executor until SIGINT/SIGTERM"),
    "stats": (".stats", "job analytics from the database"),
    "assets": (".assets", "list the studio's assets (asset_libraries) matching a query"),
    "dashboard": (".dashboard", "the farm's read-only page (nodes, queue, recent jobs) on loopback"),
}

PROG = "blender --command slack_ai"


class UsageError(Exception):
    """Bad input from the user: exit 2 with the message."""


def build_parser(subcommands: Mapping[str, tuple[str, str]] | None = None,
                 prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Slack AI render agent: headless runner")
    parser.add_argument("--log-level", default=None,
                        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default: WARNING for one-shot, INFO for serve)")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in (SUBCOMMANDS if subcommands is None else subcommands).items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name, __name__)
        except ImportError as exc:
            # One broken or missing subcommand must not take the others down with it.
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(_module=module_name, _unavailable=str(exc))
            continue
        adder = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
        adder(p)
        p.set_defaults(_module=module_name, _unavailable="")
    return parser


def main(argv: Sequence[str] | None = None, *, subcommands: Mapping[str, tuple[str, str]] | None = None,
         prog: str = PROG) -> int:
    parser = build_parser(subcommands, prog)
    args = parser.parse_args(None if argv is None else list(argv))
    level = args.log_level or ("INFO" if args.subcommand in ("serve", "sandbox") else "WARNING")
    if args.log_level:
        # Checked like every other setting, before logging is set up: a bad level is bad input.
        from ..core.config import ConfigError, flag_source, validate_setting

        try:
            level = validate_setting("log_level", args.log_level, flag_source("log_level"))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args._unavailable:
        print(f"error: '{args.subcommand}' is not available here: {args._unavailable}", file=sys.stderr)
        return 1
    module = importlib.import_module(args._module, __name__)
    runner = getattr(module, f"run_{args.subcommand}", None) or module.run
    try:
        return int(runner(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
