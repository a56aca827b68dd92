"""What counts as a secret, and database URLs whose password holds URL syntax (issue 11, item 8).

docs/SECURITY.md, "Secrets": the S3 access key id is an identifier (it is in every presigned
link posted to Slack), masked in settings dumps and logs only as a courtesy; database
passwords are taken whole, to the last `@`, whatever they contain."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from slack_ai_addon.cli.logs import configure_logging
from slack_ai_addon.core.config import (
    COURTESY_MASKED_FIELDS,
    SECRET_FIELDS,
    ConfigError,
    Settings,
    load_settings,
)
from slack_ai_addon.redaction import redact, redact_url, split_database_url
from slack_ai_addon.storage.db import DatabaseUnavailable, DatabaseUrlError, open_sql_store

KEY_ID = "AKIAEXAMPLEKEYID0042"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_the_s3_access_key_id_is_an_identifier_masked_as_a_courtesy() -> None:
    assert "s3_access_key" not in SECRET_FIELDS and "s3_access_key" in COURTESY_MASKED_FIELDS
    assert "s3_secret_key" in SECRET_FIELDS and "slack_signing_secret" in SECRET_FIELDS
    s = load_settings(env={"S3_ACCESS_KEY": KEY_ID, "S3_SECRET_KEY": SECRET_KEY})
    assert s.secrets() == [SECRET_KEY]  # what must never be posted, logged or written
    assert set(s.masked_values()) == {SECRET_KEY, KEY_ID}  # what log lines hide
    public = json.dumps(s.public_dict())
    assert KEY_ID not in public and SECRET_KEY not in public and KEY_ID not in repr(s)
    assert s.public_dict()["s3_access_key"] == "AKIAE…"
    with pytest.raises(ConfigError) as err:
        load_settings(prefs={"s3_access_key": KEY_ID, "lease_s": "soon"})
    assert KEY_ID not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(prefs={"s3_access_key": 12345678})  # a wrong type: the message hides the value
    assert "12345678" not in str(err.value) and "hidden" in str(err.value)


def test_service_logs_hide_the_key_id_and_the_secrets() -> None:
    s = Settings(s3_access_key=KEY_ID, s3_secret_key=SECRET_KEY, slack_signing_secret="signing-secret-0123",
                 database_url="mssql+pymssql://sa:p@ss#w0rd@db.example:1433/slack_ai")
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(fmt="json", node="n", secrets=s.masked_values(), stream=stream)
        logging.getLogger("scan").warning("s3 %s %s signing %s url %s", KEY_ID, SECRET_KEY, s.slack_signing_secret,
                                          s.database_url)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    line = json.loads(stream.getvalue())["message"]
    for value in (KEY_ID, SECRET_KEY, "signing-secret-0123", "p@ss#w0rd", "ss#w0rd", "w0rd@db"):
        assert value not in line, line
    assert "db.example" in line  # the host stays readable


@pytest.mark.parametrize(("written", "password"), [
    ("p@ss", "p@ss"),  # an unencoded '@': the password runs to the last '@'
    ("a@b@c", "a@b@c"),
    ("p#ss", "p#ss"),  # '#', '?', '/' end urllib's host: taken whole here
    ("p?ss", "p?ss"),
    ("pa/ss", "pa/ss"),
    ("pa:ss", "pa:ss"),  # only the first ':' separates the user
    ("Secret%40Pw", "Secret@Pw"),  # percent-escapes are decoded for the driver
    ("x%2Fy%3Az%25", "x/y:z%"),
    ("Scan@Pass#word@42", "Scan@Pass#word@42"),
])
def test_database_passwords_are_taken_whole(written: str, password: str) -> None:
    url = f"mssql+pymssql://sa:{written}@db.example:1433/slack_ai?login_timeout=5"
    parts = split_database_url(url)
    assert (parts.user, parts.password, parts.raw_password) == ("sa", password, written)
    assert (parts.host, parts.port, parts.database, parts.options) == ("db.example", 1433, "slack_ai",
                                                                        {"login_timeout": "5"})
    assert redact_url(url) == "mssql+pymssql://sa:***@db.example:1433/slack_ai?login_timeout=5"
    s = load_settings(env={"DATABASE_URL": url})
    assert s.public_dict()["database_url"] == "mssql+pymssql://sa:***@db.example:1433/slack_ai?login_timeout=5"
    assert password in s.secrets() and written in s.secrets()
    text = redact(f"login failed for {url}, password {password} or {quote(password, safe='')}", s.secrets())
    tail = password.split("@")[-1]
    assert password not in text and written not in text and (len(tail) < 3 or tail not in text)


def test_urls_without_a_password_are_left_alone() -> None:
    for url in ("mssql+pymssql://db.example:1433/slack_ai", "mssql+pymssql://sa@db.example/slack_ai",
                "https://example.com/path?who=a@b", "sqlite:///tmp/jobs.db"):
        assert redact_url(url) == url
    parts = split_database_url("mssql+pymssql://sa@db.example/slack_ai")
    assert (parts.user, parts.password, parts.host, parts.port) == ("sa", "", "db.example", None)


def test_database_errors_never_show_the_password(tmp_path: Path) -> None:
    bad_port = "mssql+pymssql://sa:pa#ss@w0rd@db.example:notaport/slack_ai"
    with pytest.raises(ValueError) as err:
        split_database_url(bad_port)
    assert "pa#ss" not in str(err.value) and "w0rd" not in str(err.value)
    for url in (bad_port, "mssql+pymssql://sa:pa#ss@w0rd@/slack_ai",
                "mssql+pymssql://sa:pa#ss@w0rd@127.0.0.1:1/slack_ai?login_timeout=1"):
        with pytest.raises((DatabaseUrlError, DatabaseUnavailable, ValueError)) as caught:
            open_sql_store(url, outbox_path=tmp_path / "outbox.jsonl")
        assert "pa#ss" not in str(caught.value) and "w0rd" not in str(caught.value), caught.value
