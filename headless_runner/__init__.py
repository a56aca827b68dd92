"""Command line for one-shot jobs, farm nodes and the local Slack sandbox.

`python -m headless_runner render|analyze|serve|sandbox|command|stats ...`

A thin entry: the subcommands that ship with the add-on (render, analyze, serve, stats, and
the farm `worker`) live in `slack_ai_addon.cli`; this package adds the development tools
that need the local Slack stand-in (`command`, `sandbox`), which are not shipped in the
extension.
"""
