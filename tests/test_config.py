"""Configuration: YAML sections, original environment variables, validation, secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from meccano.config import DEFAULT_CONFIG_FILE, ConfigError, load_settings

YAML = """
default:
  warninglimit: 30
  mysql: {host: db.local, port: 3306, user: sm, password: yaml-Secret-pw, database: IOTDB}
  aws: {region: us-east-1, accessKeyId: AKIAEXAMPLE, secretAccessKey: yaml-Aws-Secret-key}
  export: {bucket: b1, days: 3}
prod:
  warninglimit: 5
  export: {bucket: prod-bucket}
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(YAML)
    return path


def test_defaults_are_the_originals():
    s = load_settings(env={})
    assert s.warninglimit == 60 and s.aws.region == "sa-east-1"
    assert (s.export.enabled, s.export.purge, s.export.days, s.export.local_directory) == (True, True, 1, "/tmp/")
    assert s.legacy.scheduler_monitor == "*/1 * * * *" and s.legacy.port == 8000
    assert s.source == str(DEFAULT_CONFIG_FILE)


def test_named_section_merges_over_default(cfg: Path):
    s = load_settings(cfg, env={"MECCANO_ENV": "prod"})
    assert s.warninglimit == 5
    assert s.export.bucket == "prod-bucket" and s.export.days == 3  # merged, not replaced
    assert s.mysql.host == "db.local" and s.environment == "prod"


def test_node_env_selects_section_like_the_original(cfg: Path):
    assert load_settings(cfg, env={"NODE_ENV": "prod"}).warninglimit == 5


def test_every_original_variable_overrides_yaml(cfg: Path):
    env = {
        "WARNINGLIMIT": "7", "SCHEDULER_MONITOR": "*/2 * * * *", "AWS_REGION": "eu-west-1",
        "AWS_ACCESSKEYID": "AKIAENV", "AWS_SECRETACCESSKEY": "env-Aws-Secret", "AWS_TOPICARN": "arn:aws:sns:x:1:t",
        "AWS_SSLENABLED": "true", "MYSQL_HOST": "h2", "MYSQL_PORT": "3307", "MYSQL_USER": "u2",
        "MYSQL_PASSWORD": "env-Db-Password", "MYSQL_DATABASE": "D2", "MYSQL_CONNECTIONLIMIT": "4",
        "EXPORT_ENABLED": "false", "EXPORT_BUCKET": "b2", "EXPORT_LOCALDIRECTORY": "/var/tmp/",
        "EXPORT_REMOTEDIRECTORY": "passagem/", "EXPORT_PURGE": "false", "EXPORT_DAYS": "10", "FORECAST_DAYS": "14",
        "MIRROR": "other-host", "PORT": "8001",
    }
    s = load_settings(cfg, env=env)
    assert s.warninglimit == 7 and s.legacy.scheduler_monitor == "*/2 * * * *"
    assert (s.aws.region, s.aws.access_key_id, s.aws.secret_access_key.get(), s.aws.topic_arn, s.aws.ssl_enabled) == (
        "eu-west-1", "AKIAENV", "env-Aws-Secret", "arn:aws:sns:x:1:t", True)
    assert (s.mysql.host, s.mysql.port, s.mysql.user, s.mysql.password.get(), s.mysql.database,
            s.mysql.connection_limit) == ("h2", 3307, "u2", "env-Db-Password", "D2", 4)
    assert (s.export.enabled, s.export.bucket, s.export.local_directory, s.export.remote_directory,
            s.export.purge, s.export.days) == (False, "b2", "/var/tmp/", "passagem/", False, 10)
    assert s.forecast_days == 14 and s.legacy.mirror == "other-host" and s.legacy.port == 8001


def test_original_active_spelling_is_accepted(tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text("default:\n  export:\n    active: false\n")
    assert load_settings(path, env={}).export.enabled is False


@pytest.mark.parametrize(("env", "message"), [
    ({"MYSQL_PORT": "abc"}, "mysql.port (from environment variable MYSQL_PORT): 'abc' is not a whole number"),
    ({"EXPORT_DAYS": "-1"}, "export.days (from environment variable EXPORT_DAYS): -1 must be 0 or more"),
    ({"WARNINGLIMIT": "0"}, "warninglimit (from environment variable WARNINGLIMIT): 0 must be 1 or more"),
    ({"EXPORT_PURGE": "maybe"}, "export.purge (from environment variable EXPORT_PURGE): 'maybe' is not a boolean"),
])
def test_bad_environment_values_name_key_and_source(cfg: Path, env: dict, message: str):
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env=env)
    assert message in str(err.value)


def test_bad_yaml_value_names_file_and_section(tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text("default:\n  mysql:\n    port: three\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(err.value).startswith(f"mysql.port (from {path} [default]): 'three' is not a whole number")


def test_malformed_yaml_gives_line(tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text("default:\n  mysql: [unclosed\n  aws: {}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(err.value).startswith(f"{path}: malformed YAML at line")


def test_unknown_section_is_an_error(cfg: Path):
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={"MECCANO_ENV": "staging"})
    assert "MECCANO_ENV='staging': no section 'staging'" in str(err.value) and "default, prod" in str(err.value)


def test_status_thresholds_must_be_ordered(cfg: Path):
    with pytest.raises(ConfigError, match="warningMinutes"):
        load_settings(cfg, env={"STATUS_NORMAL_MINUTES": "20", "STATUS_WARNING_MINUTES": "10"})


def test_secrets_never_in_repr_or_errors(cfg: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    s = load_settings(cfg, env={"MYSQL_PASSWORD": "env-Db-Password"})
    text = repr(s) + str(s)
    for secret in ("env-Db-Password", "yaml-Aws-Secret-key", "yaml-Secret-pw"):
        assert secret not in text
    assert "Secret('***')" in text
    path = cfg.parent / "bad.yml"
    path.write_text("default:\n  mysql:\n    password: [not-a-string-Secret-xyz]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert "not-a-string-Secret-xyz" not in str(err.value) and "mysql.password" in str(err.value)
    assert "Secret" not in caplog.text or "***" in caplog.text
