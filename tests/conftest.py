"""Shared test setup: tests talk only to loopback fakes, never to real services."""

import os

import pytest

_SCRUB = ["OPENAI_API_KEY", "ABACUS_API_KEY", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "OPENAI_BASE_URL",
          "ROUTELLM_BASE_URL", "LM_STUDIO_BASE_URL", "DATABASE_URL", "S3_ENDPOINT_URL", "S3_BUCKET_NAME",
          "S3_ACCESS_KEY", "S3_SECRET_KEY", "SLACK_AI_CONFIG", "SLACK_AI_OUTPUT_DIR", "SLACK_API_URL",
          "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
for _name in _SCRUB:
    os.environ.pop(_name, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded defaults write to the user data folder: keep each test's apart."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))
