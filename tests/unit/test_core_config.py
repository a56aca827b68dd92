"""Settings precedence and secret handling."""

from pathlib import Path

import pytest

from slack_ai_addon.core.config import ConfigError, load_settings


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
