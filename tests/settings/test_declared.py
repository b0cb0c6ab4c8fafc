"""Every setting is declared once (include/meccano/settings/config.py): the readers, compose and the README
follow that declaration, and only the settings room reads the environment for configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from meccano.settings.config import Key, Settings, declared_keys, load_settings, setting_keys

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "include" / "meccano"

# Modules outside settings/ that may read os.environ: none of them reads a setting.
ALLOWED_ENVIRON_READERS = {
    # the runner is the script's parent process: it reads what build_script_env gave it (MECCANO_INTERPRETER, ...)
    "scripts/runner.py",
    # the command of a script pod (plugins.isolation pod): reads what the worker put in the pod's environment
    "scripts/pod_entry.py",
    # a script gets the worker's PATH, HOME, LANG, LC_ALL, TMPDIR (PASSED_FROM_WORKER) and nothing else
    "scripts/environment.py",
    # the demo builds the environment of the Airflow processes it starts, and its own --port defaults
    "cli/demo.py",
}
_ENVIRON = re.compile(r"\bos\.(environ|getenv)\b|\bgetenv\(|from os import .*\b(environ|getenv)\b")


def test_only_the_settings_room_reads_the_environment():
    readers = {str(path.relative_to(PRODUCT)) for path in PRODUCT.rglob("*.py")
               if path.parent.name != "settings" and _ENVIRON.search(path.read_text())}
    assert readers - ALLOWED_ENVIRON_READERS == set(), "read it through meccano.settings (a declared Key)"
    assert ALLOWED_ENVIRON_READERS - readers == set(), "an allow-list entry no longer needed: remove it"


def test_every_field_of_every_section_is_declared_once():
    keys = [key for key, _ in declared_keys()]
    yaml_paths = [key.yaml for key in keys]
    variables = [key.env for key in keys if key.env]
    assert len(set(yaml_paths)) == len(yaml_paths) and len(set(variables)) == len(variables)
    from meccano.settings.config import _SECTION_MODELS

    for section, cls in _SECTION_MODELS.items():
        for name, info in cls.__pydantic_fields__.items():  # type: ignore[attr-defined]
            assert any(isinstance(m, Key) for m in info.metadata), f"{section}.{name} has no Key"


def test_config_show_shows_every_section():
    text = repr(load_settings(env={}))
    for attr in {target[0] for _, target in declared_keys() if len(target) == 2}:
        assert f"{attr}=" in text


@pytest.mark.parametrize(("env", "message"), [
    ({"MECCANO_PLUGIN_KILL_GRACE": "true"}, "environment variable MECCANO_PLUGIN_KILL_GRACE: 'true' is not a number"),
    ({"MECCANO_REPORTS_HISTORY": "yes"}, "reports.history / MECCANO_REPORTS_HISTORY: 'yes' is not a whole number"),
    ({"MECCANO_WEB_CONSOLE_ALLOW": "10.0.0.0/33"}, "MECCANO_WEB_CONSOLE_ALLOW: '10.0.0.0/33' is not an IP address"),
    ({"EXPORT_LOCAL_TARGET_SHARED": "2"},
     "export.localTargetShared / EXPORT_LOCAL_TARGET_SHARED: '2' is not a boolean"),
], ids=["grace-not-a-boolean", "history-not-a-boolean", "allow-list", "target-shared"])
def test_every_section_is_validated_at_load_with_the_one_rule(env: dict[str, str], message: str):
    """Numbers are never booleans and booleans never numbers, in every section (no more float('true'))."""
    from meccano.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert message in str(err.value)


def test_a_yaml_boolean_is_not_a_plugin_limit(tmp_path: Path):
    from meccano.errors import ConfigError

    cfg = tmp_path / "c.yml"
    cfg.write_text("default:\n  plugins: {defaultTimeoutMinutes: true}\n  sensorStatistics: {windowHours: yes}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    lines = str(err.value).splitlines()
    assert lines[0].startswith("plugins.defaultTimeoutMinutes (from") and "True is not a number" in lines[0]
    assert lines[1].startswith("sensorStatistics.windowHours (from") and "True is not a number" in lines[1]


def _compose_settings() -> set[str]:
    """The variables compose passes to every Airflow service."""
    raw = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    return set(raw["x-airflow-common"]["environment"])


# compose variables of the project that are not settings of config.yml
NOT_SETTINGS = {"MECCANO_ENV", "MECCANO_CONFIG", "MECCANO_PLUGINS_DIR"}


def test_compose_passes_every_declared_variable_and_no_other():
    declared = {env for _, env, _ in setting_keys()}
    passed = _compose_settings()
    assert declared - passed == set(), "docker-compose.yaml (x-airflow-common) must pass these through"
    meccano_like = {v for v in passed if not v.startswith(("AIRFLOW", "_AIRFLOW", "PYTHON", "AWS_S3_"))}
    assert meccano_like - declared - NOT_SETTINGS == set(), "passed by compose but declared nowhere"


def _readme_rows() -> list[tuple[str, str]]:
    """(YAML key cell, variable cell) of each row of the configuration table (docs/configuration.md, "Every key")."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text[text.index("## Every key"):text.index("## Time zone")]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    return [(a.strip(), b.strip()) for a, b in rows]


def test_the_readme_table_names_every_declared_variable_with_its_key():
    from meccano.settings.legacy import IGNORED

    rows = _readme_rows()
    for key, _ in declared_keys():
        if key.env:
            row = [r for r in rows if f"`{key.env}`" in r[1]]
            assert row, f"docs/configuration.md, Every key: no row for {key.env} ({key.yaml})"
            last = key.path[-1]
            assert any(f"`{key.yaml}`" in r[0] or f"`{last}`" in r[0] for r in row), (key.yaml, row)
    documented = {v for _, cell in rows for v in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    known = {key.env for key, _ in declared_keys()} | set(IGNORED)
    assert documented - known == set(), "docs/configuration.md documents variables that are not declared"


def test_export_formats_are_those_the_export_writes():
    from meccano.export.model import FORMATS
    from meccano.settings.config import EXPORT_FORMATS

    assert set(EXPORT_FORMATS) == set(FORMATS)


def test_settings_built_directly_hold_the_declared_defaults():
    empty = load_settings(env={"MECCANO_CONFIG": "/dev/null"})
    for key, target in declared_keys():
        value: object = Settings()
        loaded: object = empty
        for attr in target:
            value, loaded = getattr(value, attr), getattr(loaded, attr)
        assert value == loaded, key.yaml
