"""A plugin whose engine's interpreter is not installed: the one check (engines.missing_interpreter),
the demo's start-up plan that leaves such plugins paused, and the factory that creates their DAGs
paused when MECCANO_PLUGIN_PAUSE_WITHOUT_INTERPRETER is on (the demo turns it on). PATH is set per
test: a folder without Rscript (this machine has R), or one with a stand-in Rscript."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from meccano.cli.demo import demo_environment, startup_plan
from meccano.contract.manifest import load_plugin
from meccano.plugins.discovery import discover
from meccano.plugins.factory import build_plugin_dag
from meccano.scripts.engines import SCRIPT_ENGINES, missing_interpreter
from meccano.settings.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "meccano_plugins"
R_LINE = ("plugin deviceAvgTime:1.0 needs R (Rscript not found on PATH): left paused; "
          "install r-base-core to run it")


@pytest.fixture
def path_without_r(tmp_path, monkeypatch) -> Path:
    bare = tmp_path / "bin-without-r"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    return bare


@pytest.fixture
def path_with_r(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bin-with-r"
    folder.mkdir()
    for name in ("Rscript", "node"):
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_missing_interpreter_names_what_is_missing(path_without_r):
    assert missing_interpreter("R") is SCRIPT_ENGINES["R"]
    assert (missing_interpreter("R").interpreter, missing_interpreter("R").package) == ("Rscript", "r-base-core")
    assert missing_interpreter("nodejs") is SCRIPT_ENGINES["nodejs"]
    assert missing_interpreter("python") is None  # the engine's interpreter is this Python, whatever PATH holds
    assert missing_interpreter("native") is None
    assert SCRIPT_ENGINES["python"].interpreter == sys.executable


def test_missing_interpreter_finds_rscript_on_path(path_with_r):
    assert missing_interpreter("R") is None and missing_interpreter("nodejs") is None


def test_demo_plan_leaves_r_plugins_paused_with_the_line_naming_them(path_without_r):
    r_plugins = {p.manifest.dag_id for p in discover(SHIPPED).active
                 if p.manifest and p.manifest.enabled and p.manifest.engine == "R"}
    assert r_plugins == {"deviceAvgTime"}  # the shipped enabled R plugin (example_R is disabled)
    plan = startup_plan(SHIPPED)
    assert plan.held == {"deviceAvgTime": R_LINE}
    assert "deviceAvgTime" not in plan.unpaused
    assert {"updatesByDevice", "fleetStatusHistory"} <= set(plan.unpaused)  # native plugins still run


def test_demo_plan_runs_r_plugins_when_rscript_is_there(path_with_r):
    plan = startup_plan(SHIPPED)
    assert plan.held == {} and "deviceAvgTime" in plan.unpaused


def test_the_demo_turns_the_pause_on_and_production_leaves_it_off():
    assert demo_environment(8080)["MECCANO_PLUGIN_PAUSE_WITHOUT_INTERPRETER"] == "true"
    assert load_settings(env={}).plugins.pause_without_interpreter is False
    assert load_settings(env={"MECCANO_PLUGIN_PAUSE_WITHOUT_INTERPRETER": "true"}).plugins.pause_without_interpreter


@pytest.mark.parametrize(("setting", "paused"), [("true", True), ("", False)], ids=["demo", "production"])
def test_factory_creates_the_dag_paused_when_the_interpreter_is_missing(path_without_r, setting, paused):
    settings = load_settings(env={"MECCANO_PLUGIN_PAUSE_WITHOUT_INTERPRETER": setting})
    r_dag = build_plugin_dag(load_plugin(SHIPPED / "deviceAvgTime:1.0").manifest, settings)
    assert r_dag.is_paused_upon_creation is paused
    native = build_plugin_dag(load_plugin(SHIPPED / "updatesByDevice:1.0").manifest, settings)
    assert native.is_paused_upon_creation is False


def test_factory_leaves_the_dag_unpaused_when_the_interpreter_is_there(path_with_r):
    settings = load_settings(env={"MECCANO_PLUGIN_PAUSE_WITHOUT_INTERPRETER": "true"})
    assert build_plugin_dag(load_plugin(SHIPPED / "deviceAvgTime:1.0").manifest, settings).is_paused_upon_creation \
        is False
