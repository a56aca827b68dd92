"""The local Slack stand-in: a faithful fake Slack server (Web API + Socket Mode + web page).

A development and evaluation tool (tests, `scripts/run`, `python -m headless_runner
sandbox`): it needs aiohttp (the `sandbox` extra) and is not shipped in the extension.
"""

import os

# The stand-in shares its process with Blender in `command` and `sandbox`. A review saw
# rare segfaults inside aiohttp's C HTTP parser (data_received) while the main thread was in
# a Blender render; the pure-Python parser is plenty for a local stand-in, so use it. Set
# here, before any module of this package imports aiohttp.
os.environ.setdefault("AIOHTTP_NO_EXTENSIONS", "1")

from .slack_server import Ack, ApiCall, Delivery, FakeSlackServer, UploadedFile  # noqa: E402

__all__ = ["Ack", "ApiCall", "Delivery", "FakeSlackServer", "UploadedFile"]
