"""The sandbox page's command endpoint runs jobs with the environment's LLM keys: only the
page's own requests get through. A cross-origin page, a `text/plain` "simple request" (the
kind a browser sends cross-site without a preflight), a request without the per-start
token, or with the token of an earlier start, is refused and queues nothing. The server
binds to loopback only."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from headless_runner.sandbox import FakeSlackServer
from headless_runner.sandbox.page import TOKEN_HEADER


@pytest.fixture
def srv() -> Iterator[FakeSlackServer]:
    server = FakeSlackServer().start()
    try:
        yield server
    finally:
        server.stop()


def post(srv: FakeSlackServer, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(srv.base_url + "sandbox/command", data=body, headers=headers,  # noqa: S310
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback test server
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def page_token(srv: FakeSlackServer) -> str:
    with urllib.request.urlopen(srv.base_url, timeout=5) as resp:  # noqa: S310 - loopback
        assert resp.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        page = resp.read().decode()
    found = re.search(r'<meta name="sandbox-token" content="([^"]+)">', page)
    assert found is not None and len(found.group(1)) >= 32
    assert f'"{TOKEN_HEADER}": token' in page  # the page's own script sends it
    return found.group(1)


BODY = json.dumps({"text": "/render a red cube"}).encode()


def own_headers(srv: FakeSlackServer, token: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Origin": srv.base_url.rstrip("/"), "Sec-Fetch-Site": "same-origin",
            TOKEN_HEADER: token}


def test_the_pages_own_request_works(srv: FakeSlackServer) -> None:
    status, body = post(srv, BODY, own_headers(srv, page_token(srv)))
    assert status == 200 and body["ok"] is True and body["envelope_id"]


@pytest.mark.parametrize("change, error", [
    ({"Content-Type": "text/plain"}, "json_only"),  # a cross-site fetch(mode: "no-cors") / form
    ({"Content-Type": "application/x-www-form-urlencoded"}, "json_only"),
    ({"Origin": "https://evil.example"}, "cross_origin"),
    ({"Origin": "null"}, "cross_origin"),  # a sandboxed iframe or a file:// page
    ({"Sec-Fetch-Site": "cross-site"}, "cross_origin"),
    ({TOKEN_HEADER: ""}, "bad_token"),
    ({TOKEN_HEADER: "not-the-token"}, "bad_token"),
], ids=["text-plain", "form", "evil-origin", "null-origin", "cross-site", "no-token", "wrong-token"])
def test_anything_else_is_refused(srv: FakeSlackServer, change: dict[str, str], error: str) -> None:
    headers = {**own_headers(srv, page_token(srv)), **change}
    status, body = post(srv, BODY, headers)
    assert status in (403, 415) and body == {"ok": False, "error": error}
    assert srv.deliveries == []  # nothing reached the agent


def test_the_cross_origin_text_plain_post_of_the_issue_is_refused(srv: FakeSlackServer) -> None:
    # What any web page open in the user's browser could send without a preflight.
    status, body = post(srv, BODY, {"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://evil.example",
                                    "Sec-Fetch-Site": "cross-site"})
    assert status in (403, 415) and body["ok"] is False
    assert srv.deliveries == []


def test_a_token_from_an_earlier_start_is_refused(srv: FakeSlackServer) -> None:
    old = FakeSlackServer().start()
    try:
        stale = page_token(old)
    finally:
        old.stop()
    status, body = post(srv, BODY, own_headers(srv, stale))
    assert (status, body["error"]) == (403, "bad_token")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::"])  # noqa: S104 - the refused case
def test_the_sandbox_binds_to_loopback_only(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeSlackServer(host=host)
