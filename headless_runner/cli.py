"""Argument parsing and dispatch. Each subcommand lives in its own module and exposes
`add_arguments(parser)` and `run(args) -> int`.

Exit codes: 0 done, 1 failure, 2 bad input (message on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "render": ("headless_runner.oneshot", "render one prompt end to end"),
    "analyze": ("headless_runner.oneshot", "analyze one text (sentiment and more)"),
    "command": ("headless_runner.slash", 'answer one slash command locally, e.g. "/render a red cube"'),
    "serve": ("headless_runner.serve", "run the Slack agent and the job executor until SIGINT/SIGTERM"),
    "sandbox": ("headless_runner.sandbox.run", "local Slack stand-in with the agent attached"),
    "stats": ("headless_runner.stats", "job analytics from the database"),
}


class UsageError(Exception):
    """Bad input from the user: exit 2 with the message."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m headless_runner",
                                     description="Slack AI render agent: headless runner")
    parser.add_argument("--log-level", default=None,
                        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default: WARNING for one-shot, INFO for serve)")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            # One broken or missing subcommand must not take the others down with it.
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(_module=module_name, _unavailable=str(exc))
            continue
        adder = getattr(module, f"add_{name}_arguments", None) or module.add_arguments
        adder(p)
        p.set_defaults(_module=module_name, _unavailable="")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or ("INFO" if args.subcommand in ("serve", "sandbox") else "WARNING")
    if args.log_level:
        # Checked like every other setting, before logging is set up: a bad level is bad input.
        from slack_ai_addon.core.config import ConfigError, flag_source, validate_setting

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
    module = importlib.import_module(args._module)
    runner = getattr(module, f"run_{args.subcommand}", None) or module.run
    try:
        return int(runner(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
