"""The local Slack stand-in: a faithful fake Slack server (Web API + Socket Mode + web page)."""

from .slack_server import Ack, ApiCall, Delivery, FakeSlackServer, UploadedFile

__all__ = ["Ack", "ApiCall", "Delivery", "FakeSlackServer", "UploadedFile"]
