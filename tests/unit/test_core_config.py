"""Settings precedence, secret handling, and validation (every rule, every source)."""

import logging
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest

from slack_ai_addon.core.config import ConfigError, Settings, load_settings, validate_setting, validate_settings


def test_precedence_flag_env_file_prefs(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('S3_BUCKET_NAME = "from-file"\nS3_REGION = "eu-file"\nlog_level = "DEBUG"\n'
                   'routellm_model = "file-model"\n')
    env = {"SLACK_AI_CONFIG": str(cfg), "S3_BUCKET_NAME": "from-env", "OPENAI_MODEL": "env-model"}
    prefs = {"s3_region": "prefs-region", "routellm_model": "prefs-model", "openai_model": "prefs-openai",
             "default_engine": "workbench"}
    s = load_settings(flags={"s3_bucket_name": "from-flag"}, env=env, prefs=prefs)
    assert s.s3_bucket_name == "from-flag"  # flag beats env
    assert s.openai_model == "env-model"  # env beats prefs
    assert s.s3_region == "eu-file"  # file beats prefs
    assert s.routellm_model == "file-model"
    assert s.default_engine == "workbench"  # prefs beat defaults
    assert s.slack_api_url == "https://slack.com/api/"  # default


def test_empty_values_do_not_override(tmp_path: Path) -> None:
    s = load_settings(flags={"output_dir": None}, env={"SLACK_AI_OUTPUT_DIR": ""})
    assert s.output_dir == ""
    assert s.resolved_output_dir(cli=True) == Path("out")


def test_secrets_are_masked_everywhere() -> None:
    token = "xoxb-1234567890-secret-value"
    s = load_settings(env={"SLACK_BOT_TOKEN": token, "OPENAI_API_KEY": "sk-verysecretkey123"})
    assert token not in repr(s)
    assert "sk-verysecretkey123" not in repr(s)
    public = s.public_dict()
    assert token not in str(public) and public["slack_bot_token"].startswith("xoxb-")
    assert set(s.secrets()) == {token, "sk-verysecretkey123"}


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(env={"SLACK_AI_CONFIG": str(bad)})
    with pytest.raises(ConfigError):
        load_settings(env={"SLACK_AI_CONFIG": str(tmp_path / "missing.toml")})


def test_admins_and_provider_order() -> None:
    s = load_settings(env={"SLACK_AI_ADMINS": "U1, U2,", "SLACK_AI_PROVIDER_ORDER": "OpenAI, offline"})
    assert s.admins == frozenset({"U1", "U2"})
    assert s.providers == ["openai", "offline"]


def test_local_only_drops_every_service_off_this_machine() -> None:
    from slack_ai_addon.core.config import Settings, local_only

    remote = Settings(abacus_api_key="k1", openai_api_key="k2", lm_studio_base_url="http://gpu-box:1234/v1",
                      s3_bucket_name="renders", s3_endpoint_url="https://minio.studio.example",
                      database_url="mssql+pymssql://sa:pw@sql.studio.example:1433/slack_ai",
                      slack_bot_token="xoxb-1", slack_app_token="xapp-1")
    kept, dropped = local_only(remote)
    assert dropped == ["RouteLLM", "OpenAI", "LM Studio", "S3", "SQL Server", "Slack"]
    assert not (kept.abacus_api_key or kept.openai_api_key or kept.lm_studio_base_url or kept.s3_bucket_name
                or kept.database_url or kept.slack_bot_token)
    local = Settings(openai_api_key="k", openai_base_url="http://127.0.0.1:9999/v1", s3_bucket_name="b",
                     s3_endpoint_url="http://localhost:9000", slack_bot_token="xoxb-s", slack_app_token="xapp-s",
                     slack_api_url="http://127.0.0.1:5000/api/",
                     database_url="mssql+pymssql://sa:pw@127.0.0.1:1433/slack_ai")
    assert local_only(local) == (local, [])


def test_local_only_from_the_environment_flag() -> None:
    s = load_settings(env={"OPENAI_API_KEY": "sk-remote", "SLACK_AI_LOCAL_ONLY": "1"})
    assert s.openai_api_key == ""
    assert load_settings(env={"OPENAI_API_KEY": "sk-remote"}).openai_api_key == "sk-remote"


def test_database_password_is_a_secret() -> None:
    url = "mssql+pymssql://sa:Pa55-word@db.example:1433/slack_ai"
    s = load_settings(env={"DATABASE_URL": url})
    assert "Pa55-word" not in repr(s)
    assert s.public_dict()["database_url"] == "mssql+pymssql://sa:***@db.example:1433/slack_ai"
    assert "Pa55-word" in s.secrets()


# ---- validation: every rule, every source, the message, secrets -------------------------------

MESSAGE = re.compile(r"^setting (?P<name>\w+) from (?P<source>.+?): (?P<what>.+); use (?P<allowed>.+)$")


def _error(**kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_settings(**kwargs)
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    assert MESSAGE.match(text), text
    return err.value


def _file(tmp_path: Path, body: str) -> dict[str, Any]:
    cfg = tmp_path / "settings.toml"
    cfg.write_text(body)
    return {"env": {"SLACK_AI_CONFIG": str(cfg)}}


# (field, bad TOML value, what the message says is wrong, what it says is allowed)
BAD_VALUES = [
    ("lease_s", '"soon"', "'soon' is not a number", "seconds, at least 2"),
    ("lease_s", "0", "0 is too small", "seconds, at least 2"),
    ("lease_s", "1.5", "1.5 is too small", "at least 2"),
    ("lease_s", "nan", "nan is not a finite number", "at least 2"),
    ("lease_s", "inf", "inf is not a finite number", "at least 2"),
    ("lease_s", "true", "true is not a number", "at least 2"),
    ("heartbeat_s", "-1", "-1 is too small", "more than 0 and at most half of lease_s"),
    ("heartbeat_s", "0", "0 is too small", "more than 0"),
    ("stop_grace_s", "-0.5", "-0.5 is too small", "0 or more"),
    ("stop_grace_s", '"later"', "is not a number", "0 or more"),
    ("s3_url_lifetime_s", "0", "0 is too small", "from 1 to 604800"),
    ("s3_url_lifetime_s", "604801", "604801 is too large", "from 1 to 604800"),
    ("log_level", '"bogus"', "'bogus' is not a log level", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("log_level", "10", "10 is not text", "DEBUG, INFO"),
    ("default_engine", '"povray"', "'povray' is not a render engine", "cycles, eevee, workbench"),
    ("provider_order", '"offline,bogus"', "names an unknown provider 'bogus'", "routellm, openai, lmstudio, offline"),
    ("provider_order", '" , "', "names no provider", "routellm, openai, lmstudio, offline"),
    ("provider_order", '["openai", 3]', "is not text", "routellm"),
    ("slack_api_url", '"ftp://slack.example/api/"', "is not an http(s) URL", "http:// or https://"),
    ("routellm_base_url", '"routellm.abacus.ai/v1"', "is not an http(s) URL", "http:// or https://"),
    ("openai_base_url", '"http://"', "has no host", "http:// or https://"),
    ("lm_studio_base_url", '"localhost:1234"', "is not an http(s) URL", "or leave it empty"),
    ("s3_endpoint_url", '"s3://bucket"', "is not an http(s) URL", "or leave it empty"),
    ("database_url", '"postgres://u@db/x"', "'postgres://…' is not a supported database URL",
     "sqlite:///PATH or mssql+pymssql://"),
    ("database_url", '"sqlite:///"', "names no file", "sqlite:///PATH"),
    ("node_id", "5", "5 is not text", "text"),
    ("s3_region", "[1, 2]", "a list is not text", "text"),
]


@pytest.mark.parametrize("name, value, what, allowed", BAD_VALUES)
def test_every_rule_rejects_bad_values(name: str, value: str, what: str, allowed: str, tmp_path: Path) -> None:
    err = _error(**_file(tmp_path, f"{name} = {value}\n"))
    match = MESSAGE.match(str(err))
    assert match and match["name"] == name and err.setting == name
    assert match["source"] == f"config file {tmp_path / 'settings.toml'}" == err.source
    assert what in match["what"], str(err)
    assert allowed in match["allowed"], str(err)


def test_the_message_matches_the_documented_example(tmp_path: Path) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text('lease_s = "soon"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(config_file=cfg, env={})
    assert str(err.value) == f"setting lease_s from config file {cfg}: 'soon' is not a number; use seconds, at least 2"


GOOD_VALUES = [
    ("lease_s", "2\nheartbeat_s = 1", 2.0), ("lease_s", '"90"', 90.0), ("heartbeat_s", "0.5", 0.5),
    ("stop_grace_s", "0", 0.0),
    ("s3_url_lifetime_s", "1", 1.0), ("s3_url_lifetime_s", "604800", 604800.0),
    ("log_level", '"debug"', "DEBUG"), ("log_level", '"Critical"', "CRITICAL"),
    ("default_engine", '"EEVEE"', "eevee"), ("default_engine", '"workbench"', "workbench"),
    ("provider_order", '"OpenAI, offline"', "OpenAI, offline"),
    ("provider_order", '["lmstudio", "offline"]', "lmstudio,offline"),
    ("admin_user_ids", '["U1", "U2"]', "U1,U2"),
    ("slack_api_url", '"http://127.0.0.1:5000/api/"', "http://127.0.0.1:5000/api/"),
    ("s3_endpoint_url", '"https://minio.example:9000"', "https://minio.example:9000"),
    ("database_url", '"sqlite:///tmp/jobs.db"', "sqlite:///tmp/jobs.db"),
    ("database_url", '"mssql+pymssql://sa:pw@db:1433/slack_ai"', "mssql+pymssql://sa:pw@db:1433/slack_ai"),
]


@pytest.mark.parametrize("name, value, expected", GOOD_VALUES)
def test_good_values_pass_and_are_normalized(name: str, value: str, expected: Any, tmp_path: Path) -> None:
    assert getattr(load_settings(**_file(tmp_path, f"{name} = {value}\n")), name) == expected


def test_empty_urls_mean_the_default_and_pass() -> None:
    s = validate_settings(Settings(openai_base_url="", lm_studio_base_url="", s3_endpoint_url="", database_url=""))
    assert s.openai_base_url == "" and s.database_url == ""


def test_the_defaults_are_valid() -> None:
    assert validate_settings(Settings()) == Settings()
    assert load_settings(env={}) == Settings()


def test_every_source_is_named(tmp_path: Path) -> None:
    assert _error(flags={"default_engine": "povray"}, env={}).source == "flag --engine"
    assert _error(flags={"output_dir": 7}, env={}).source == "flag --out"
    assert _error(flags={"lease_s": "x"}, env={}).source == "flag --lease-s"
    assert _error(env={"SLACK_AI_LOG_LEVEL": "loud"}).source == "environment SLACK_AI_LOG_LEVEL"
    assert _error(env={"SLACK_AI_PROVIDER_ORDER": "offline,bogus"}).source == "environment SLACK_AI_PROVIDER_ORDER"
    assert _error(**_file(tmp_path, 'SLACK_AI_DEFAULT_ENGINE = "povray"\n')).source == \
        f"config file {tmp_path / 'settings.toml'}"  # variable names work as keys too
    assert _error(**_file(tmp_path, '[slack_ai]\nlease_s = -3\n')).source == \
        f"config file {tmp_path / 'settings.toml'}"
    assert _error(prefs={"lease_s": 1.0}, env={}).source == "Blender preferences"
    with pytest.raises(ConfigError, match=r"^setting heartbeat_s from default: 0 is too small"):
        validate_settings(Settings(heartbeat_s=0))


def test_only_the_value_that_wins_is_checked(tmp_path: Path) -> None:
    # A bad value that a higher source overrides is not used, so it is not an error.
    s = load_settings(flags={"default_engine": "eevee"}, env={"SLACK_AI_DEFAULT_ENGINE": "povray"})
    assert s.default_engine == "eevee"
    s = load_settings(env={"SLACK_AI_LOG_LEVEL": "error"}, prefs={"log_level": "bogus"})
    assert s.log_level == "ERROR"


def test_numbers_from_the_environment_and_preferences_are_converted() -> None:
    s = load_settings(prefs={"lease_s": 42.0, "heartbeat_s": 7}, env={})
    assert (s.lease_s, s.heartbeat_s) == (42.0, 7.0) and isinstance(s.heartbeat_s, float)


def test_heartbeat_must_be_well_under_the_lease(tmp_path: Path) -> None:
    cfg = tmp_path / "settings.toml"
    ok = load_settings(**_file(tmp_path, "lease_s = 20\nheartbeat_s = 10\n"))
    assert (ok.lease_s, ok.heartbeat_s) == (20.0, 10.0)  # exactly half is fine
    err = _error(**_file(tmp_path, "lease_s = 30\nheartbeat_s = 20\n"))
    assert str(err) == (f"setting heartbeat_s from config file {cfg}: 20 is not well under lease_s 30 "
                        f"(from config file {cfg}); use more than 0 and at most half of lease_s (15)")
    # Only the lease was set: the lease is what is wrong, against the default heartbeat (10 s).
    err = _error(**_file(tmp_path, "lease_s = 10\n"))
    assert err.setting == "lease_s" and "heartbeat_s 10 (the default)" in str(err) and "(20)" in str(err)
    # Only the heartbeat was set, over half the default lease (60 s).
    err = _error(env={}, prefs={"heartbeat_s": 45.0})
    assert err.setting == "heartbeat_s" and err.source == "Blender preferences" and "(the default)" in str(err)


def test_unknown_keys_in_the_file_are_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="slack_ai_addon.core.config"):
        s = load_settings(**_file(tmp_path, 'lease_secs = 5\nS3_BUCKET_NAME = "b"\n'))
    assert s.s3_bucket_name == "b" and s.lease_s == 60.0
    assert "unknown setting 'lease_secs'" in caplog.text


SECRET = "sk-Very-Secret-Value-0123456789"


@pytest.mark.parametrize("kwargs", [
    {"env": {"DATABASE_URL": f"postgres://sa:{SECRET}@db.example/slack_ai"}},
    {"env": {"DATABASE_URL": f"sa:{SECRET}@db.example/slack_ai"}},
    {"env": {"SLACK_API_URL": f"ftp://u:{SECRET}@slack.example/"}},
    {"env": {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": SECRET}},  # a key pasted in the URL field
    {"env": {"SLACK_BOT_TOKEN": SECRET, "SLACK_AI_PROVIDER_ORDER": f"offline,{SECRET}"}},
    {"prefs": {"s3_secret_key": 12345678, "s3_access_key": SECRET}},
])
def test_secrets_never_appear_in_messages(kwargs: dict[str, Any]) -> None:
    err = _error(**kwargs)
    assert SECRET not in str(err) and "12345678" not in str(err)
    assert SECRET[:12] not in str(err)


def test_new_fields_get_type_checks_automatically() -> None:
    """A field added to Settings later, with no rule of its own, is still type-checked."""
    @dataclass
    class Later(Settings):
        retries: int = 3
        ratio: float = 0.5
        enabled: bool = False
        tags: list[str] = field(default_factory=list)

    ok = validate_settings(Later(retries="4", ratio="0.25", enabled="yes", tags=["a"]),  # type: ignore[arg-type]
                           {"retries": "environment X"})
    assert (ok.retries, ok.ratio, ok.enabled, ok.tags) == (4, 0.25, True, ["a"])
    cases: list[tuple[str, Any, str]] = [
        ("retries", "many", "is not a whole number"), ("retries", 2.5, "is not a whole number"),
        ("ratio", "half", "is not a number"), ("enabled", "maybe", "is not true or false"),
        ("tags", "a,b", "is not valid")]
    for name, value, what in cases:
        with pytest.raises(ConfigError, match=rf"^setting {name} from environment X: .*{what}.*; use "):
            validate_settings(Later(**{name: value}), {name: "environment X"})


def test_every_settings_field_has_a_checkable_type() -> None:
    from slack_ai_addon.core.config import RULES

    kinds = typing.get_type_hints(Settings)
    assert set(RULES) <= set(kinds), "a rule for a field Settings does not have"
    for f in fields(Settings):
        assert validate_setting(f.name, getattr(Settings(), f.name), "default") is not None
        assert kinds[f.name] in (str, float, int, bool) or f.name in RULES
