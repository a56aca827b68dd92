"""Shared test setup: tests talk only to loopback fakes, never to real services."""

import os
import sys
from collections.abc import Iterator

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "invalid_payloads: the test sends payloads the fake Slack refuses on purpose")


@pytest.fixture(autouse=True)
def _slack_payloads_valid(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test during which any fake Slack server refused a payload (invalid_blocks, a
    bad view or bad stream chunks): whatever the agent sends must pass slack_sdk's block
    models as the fake checks them. Costs nothing for tests that start no fake Slack."""
    block_kit = sys.modules.get("headless_runner.sandbox.block_kit")
    start = block_kit.refusals_since(1 << 62)[0] if block_kit is not None else 0
    yield
    block_kit = sys.modules.get("headless_runner.sandbox.block_kit")
    if block_kit is None or request.node.get_closest_marker("invalid_payloads") is not None:
        return
    _, refused = block_kit.refusals_since(start)
    if refused:
        lines = [f"{r.method}: {r.error}: {'; '.join(r.errors[:3])}" for r in refused[:5]]
        pytest.fail("the fake Slack refused payloads as Slack would:\n" + "\n".join(lines), pytrace=False)
