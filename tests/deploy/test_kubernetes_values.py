"""The Helm values of the Kubernetes guide (docs/kubernetes-values.yaml and the values blocks of docs/kubernetes.md)
use only keys the official Airflow chart documents, and only settings Meccano declares. No network: the chart's key
paths were read from its values.schema.json into docs/kubernetes-chart-keys.json (its commit is noted there)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "docs" / "kubernetes-values.yaml"
GUIDE = ROOT / "docs" / "kubernetes.md"
KEYS = json.loads((ROOT / "docs" / "kubernetes-chart-keys.json").read_text())
VALUES_BLOCK = "# helm values"  # first line of a ```yaml block of the guide that holds chart values


def key_paths(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of a values tree (a list is a leaf: its items are Kubernetes objects or env entries)."""
    for key, value in values.items():
        path = (*prefix, str(key))
        yield path
        if isinstance(value, dict):
            yield from key_paths(value, path)


def _matches(pattern: str, path: tuple[str, ...]) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p in ("*", q) for p, q in zip(parts, path, strict=True))


def unknown_paths(values: dict[str, Any]) -> list[str]:
    """The key paths the chart does not document (per docs/kubernetes-chart-keys.json)."""
    bad = []
    for path in key_paths(values):
        if any(_matches(p, path) for p in KEYS["paths"]):
            continue
        if any(len(path) >= p.count(".") + 1 and _matches(p, path[:p.count(".") + 1]) for p in KEYS["open"]):
            continue
        bad.append(".".join(path))
    return bad


def guide_blocks() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [yaml.safe_load(b) for b in blocks if b.startswith(VALUES_BLOCK)]


def test_the_values_file_uses_only_keys_the_chart_documents():
    values = yaml.safe_load(VALUES.read_text())
    assert unknown_paths(values) == []
    assert unknown_paths({"workers": {"replica": 2}, "apiServer": {"consolePort": 8000}}) == [
        "workers.replica", "apiServer.consolePort"]  # the check does see a wrong key


def test_the_guides_values_blocks_use_only_keys_the_chart_documents():
    blocks = guide_blocks()
    assert len(blocks) >= 2  # git-sync, the pod template of the script pods
    for block in blocks:
        assert unknown_paths(block) == [], block


def _meccano_env(values: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in values.get("env", []) if e["name"].startswith(("MECCANO_", "EXPORT_", "TZ"))}


def test_the_values_set_only_declared_settings_with_valid_values():
    from meccano.settings.config import load_settings, setting_keys

    values = yaml.safe_load(VALUES.read_text())
    env = _meccano_env(values)
    declared = {variable for _, variable, _ in setting_keys()}
    assert set(env) - declared <= {"MECCANO_PLUGINS_DIR"}, set(env) - declared
    secret_env = {s["envName"] for s in values["secret"]}
    assert "MECCANO_WEB_CONSOLE_TOKEN" in secret_env and not set(env) & secret_env
    settings = load_settings(env={k: v for k, v in env.items() if k in declared})
    assert settings.plugins.isolation == "pod" and settings.plugins.pod_secret == "meccano-script-secrets"
    assert settings.plugins.pod_image.endswith(values["images"]["airflow"]["tag"])  # the workers' own image


@pytest.mark.parametrize("needle", [
    "python -m meccano db upgrade",  # the set-up job
    "allowPrivilegeEscalation: false",
    "MECCANO_PLUGIN_ISOLATION",
    "name: console",
])
def test_the_values_file_carries_the_deployment(needle: str):
    assert needle in VALUES.read_text()
