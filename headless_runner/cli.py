"""`python -m headless_runner`: the add-on's command line (`slack_ai_addon.cli`) plus the
development subcommands that run against the local Slack stand-in (headless_runner.sandbox).

Exit codes: 0 done, 1 failure, 2 bad input (message on stderr, never a traceback).
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_ai_addon import cli as addon_cli
from slack_ai_addon.cli import UsageError

__all__ = ["SUBCOMMANDS", "UsageError", "main"]

_ADDON = addon_cli.SUBCOMMANDS
# The order is the help's order.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "render": _ADDON["render"],
    "analyze": _ADDON["analyze"],
    "command": ("headless_runner.slash", 'answer one slash command locally, e.g. "/render a red cube"'),
    "serve": _ADDON["serve"],
    "sandbox": ("headless_runner.sandbox.run", "local Slack stand-in with the agent attached"),
    "stats": _ADDON["stats"],
    "assets": _ADDON["assets"],
    "dashboard": _ADDON["dashboard"],
}

PROG = "python -m headless_runner"


def main(argv: Sequence[str] | None = None) -> int:
    return addon_cli.main(argv, subcommands=SUBCOMMANDS, prog=PROG)
