"""Command line for one-shot jobs, farm nodes and the local Slack sandbox.

`python -m headless_runner render|analyze|serve|sandbox|command|stats ...`
"""
