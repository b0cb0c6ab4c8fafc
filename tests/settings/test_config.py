"""Configuration: YAML sections, original environment variables, validation, secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from meccano.errors import ConfigError
from meccano.settings.config import DEFAULT_CONFIG_FILE, load_settings

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


def _case_ids(cases: list[tuple[dict[str, str], str]]) -> list[str]:
    """Each case's id: the variables it sets (``MYSQL_PORT=abc``), not env0, env1, ..."""
    return [",".join(f"{k}={v[:16]}" for k, v in env.items()) for env, _ in cases]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(YAML)
    return path


def test_defaults_are_the_originals():
    s = load_settings(env={})
    assert s.warninglimit == 60 and s.aws.region == "sa-east-1"
    assert (s.export.enabled, s.export.purge, s.export.days, s.export.local_directory) == (True, True, 1, "")
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


BAD_ENVIRONMENT: list[tuple[dict[str, str], str]] = [
    ({"MYSQL_PORT": "abc"}, "mysql.port (from environment variable MYSQL_PORT): 'abc' is not a whole number"),
    ({"EXPORT_DAYS": "-1"}, "export.days (from environment variable EXPORT_DAYS): -1 must be 0 or more"),
    ({"WARNINGLIMIT": "0"}, "warninglimit (from environment variable WARNINGLIMIT): 0 must be 1 or more"),
    ({"EXPORT_PURGE": "maybe"}, "export.purge (from environment variable EXPORT_PURGE): 'maybe' is not a boolean"),
]


@pytest.mark.parametrize(("env", "message"), BAD_ENVIRONMENT, ids=_case_ids(BAD_ENVIRONMENT))
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


# --- the configuration as models: ranges, the one rule, secrets, warnings ------------------------

def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yml"
    path.write_text(text)
    return path


OUT_OF_RANGE: list[tuple[dict[str, str], str]] = [
    ({"MYSQL_PORT": "70000"}, "mysql.port (from environment variable MYSQL_PORT): 70000 must be 65535 or less"),
    ({"MYSQL_PORT": "0"}, "mysql.port (from environment variable MYSQL_PORT): 0 must be 1 or more"),
    ({"PORT": "65536"}, "port (from environment variable PORT): 65536 must be 65535 or less"),
    ({"EXPORT_DAYS": str(10**9)},
     f"export.days (from environment variable EXPORT_DAYS): {10**9} must be 36500 or less"),
    ({"WARNINGLIMIT": str(10**30)},
     f"warninglimit (from environment variable WARNINGLIMIT): {10**30} must be 10080 or less"),
    ({"WARNINGLIMIT": "1" * 5000}, "warninglimit (from environment variable WARNINGLIMIT): '1111"),
    ({"MYSQL_PORT": "3306.5"}, "'3306.5' is not a whole number"),
    ({"MYSQL_PORT": "nan"}, "'nan' is not a whole number"),
    ({"EXPORT_PURGE": "y"}, "export.purge (from environment variable EXPORT_PURGE): 'y' is not a boolean"),
    ({"TZ": "Mars/Olympus"}, "timezone (from environment variable TZ): unknown time zone 'Mars/Olympus'"),
    ({"TZ": "../../etc/passwd"}, "timezone (from environment variable TZ): unknown time zone '../../etc/passwd'"),
]


@pytest.mark.parametrize(("env", "message"), OUT_OF_RANGE, ids=_case_ids(OUT_OF_RANGE))
def test_ranges_that_fit_the_use(env: dict, message: str):
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert message in str(err.value)


@pytest.mark.parametrize(("word", "expected"), [
    ("true", True), ("TRUE", True), ("yes", True), ("on", True), ("1", True), (True, True),
    ("false", False), ("No", False), ("off", False), ("0", False), (False, False),
    ("y", None), ("n", None), ("", None), ("maybe", None), (1, None), (None, None),
], ids=lambda v: repr(v) if v is not None and not isinstance(v, bool) else None)
def test_one_rule_for_booleans_everywhere(word: object, expected: bool | None):
    """The one rule: these words are booleans, anything else (the number 1 too) is an error."""
    from meccano.settings.rules import parse_bool

    if expected is None:
        with pytest.raises(ValueError, match="is not a boolean"):
            parse_bool(word)
    else:
        assert parse_bool(word) is expected


def test_the_rule_applies_to_settings():
    assert load_settings(env={"EXPORT_PURGE": "off", "AWS_SSLENABLED": "Yes"}).export.purge is False


def test_every_bad_value_reported_at_once():
    with pytest.raises(ConfigError) as err:
        load_settings(env={"MYSQL_PORT": "abc", "EXPORT_DAYS": "-1", "TZ": "Nowhere/Land"})
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and {line.split(" ")[0] for line in lines} == {"mysql.port", "export.days", "timezone"}


def test_time_zone_valid_at_load(tmp_path: Path):
    assert load_settings(env={"TZ": "Brazil/East"}).timezone == "Brazil/East"
    assert load_settings(env={"TZ": "America/Sao_Paulo"}).timezone == "America/Sao_Paulo"
    path = _write(tmp_path, "default:\n  timezone: Atlantis/Lost\n")
    with pytest.raises(ConfigError, match=r"timezone \(from .*c.yml \[default\]\): unknown time zone 'Atlantis/Lost'"):
        load_settings(path, env={})


@pytest.mark.parametrize("var", ["MECCANO_CONFIG", "CONFIG_FILE"])
def test_named_config_file_missing_is_an_error_never_defaults(tmp_path: Path, var: str):
    with pytest.raises(ConfigError) as err:
        load_settings(env={var: str(tmp_path / "missing.yml")})
    assert str(err.value).startswith(f"{tmp_path / 'missing.yml'} (named by environment variable {var}): "
                                     "configuration file not found")


def test_named_config_file_must_be_a_regular_file(tmp_path: Path):
    import os

    os.mkfifo(tmp_path / "pipe.yml")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings(env={"MECCANO_CONFIG": str(tmp_path / "pipe.yml")})


@pytest.mark.parametrize(("value", "hidden"), [("0123", ("0123", "83")), ("12345", ("12345",)),
                                               ("yes", ("yes", "True")), ("1.5", ("1.5",))])
def test_secrets_must_be_yaml_strings(tmp_path: Path, value: str, hidden: tuple[str, ...]):
    path = _write(tmp_path, f"default:\n  mysql:\n    password: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    text = str(err.value)
    assert text.startswith(f"mysql.password (from {path} [default]): must be a string; quote it")
    shown = text.replace(str(path), "")  # the file's own path may hold the digits (pytest-183)
    assert not any(h in shown for h in hidden)
    quoted = _write(tmp_path, f"default:\n  mysql:\n    password: '{value}'\n")
    assert load_settings(quoted, env={}).mysql.password.get() == value


def test_unquoted_yaml_number_for_a_text_key_is_named(tmp_path: Path):
    path = _write(tmp_path, "default:\n  mysql:\n    user: 0123\n")
    with pytest.raises(ConfigError, match=r"mysql.user \(from .*\): 83 is not a text; .*quote it"):
        load_settings(path, env={})


def test_unknown_and_duplicate_keys_are_warnings_naming_them(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = _write(tmp_path, "default:\n  warninglimt: 30\n  warninglimit: 20\n  warninglimit: 25\n"
                            "  mysql:\n    prot: 3307\n  myPluginSection:\n    anything: 1\n")
    caplog.set_level(logging.WARNING)
    s = load_settings(path, env={})
    assert s.warninglimit == 25
    assert any("unknown key 'warninglimt'" in w for w in s.warnings)
    assert any("unknown key 'mysql.prot'" in w and "known: connectionLimit, database" in w for w in s.warnings)
    assert any("duplicate key 'warninglimit' at line 4; the last one wins" in w for w in s.warnings)
    assert not any("myPluginSection" in w for w in s.warnings)  # a plugin's own section
    assert "warninglimt" in caplog.text


def test_shipped_config_has_no_warnings():
    assert load_settings(env={}).warnings == ()


def test_huge_yaml_integer_is_an_error_not_a_crash(tmp_path: Path):
    path = _write(tmp_path, "default:\n  warninglimit: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(path) in str(err.value)


def test_url_credentials_masked_in_repr():
    s = load_settings(env={"AWS_ENDPOINTURL": "https://key:Url-Secret-1@s3.example:9000/x",
                           "MECCANO_REPORTS_DIR": "s3://u:Other-Secret@bucket/p"})
    text = repr(s)
    assert "Url-Secret-1" not in text and "Other-Secret" not in text
    assert "https://key:***@s3.example:9000/x" in text
    assert s.aws.endpoint_url == "https://key:Url-Secret-1@s3.example:9000/x"  # the value itself is kept


def test_sections_are_pydantic_models_with_secretstr():
    from dataclasses import replace

    from pydantic import SecretStr

    from meccano.settings.config import MysqlSettings, Settings, StatusSettings

    s = Settings()
    assert isinstance(s.mysql.password, SecretStr)
    with pytest.raises(ValueError, match="65535"):
        MysqlSettings(port=70000)
    assert replace(s, status=StatusSettings(normal_minutes=2, warning_minutes=30)).status.warning_minutes == 30


def test_dev_null_is_an_empty_configuration():
    s = load_settings(env={"MECCANO_CONFIG": "/dev/null"})
    assert s.warninglimit == 60 and s.source == "/dev/null"


def test_a_section_that_is_not_a_mapping_is_named(tmp_path: Path):
    path = _write(tmp_path, "default:\n  mysql: 5\n  export: [1, 2]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert f"export (from {path} [default]): must be a mapping of keys" in str(err.value)
    assert f"mysql (from {path} [default]): must be a mapping of keys (connectionLimit" in str(err.value)
