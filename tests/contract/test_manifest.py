"""The plugin contract: each kind of bad input gets its own precise error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meccano.contract.cron import cron_problem
from meccano.contract.manifest import load_plugin
from meccano.plugins.discovery import discover
from meccano.problems import Severity

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plugins"


def problems(folder: str) -> list[str]:
    load = load_plugin(FIXTURES / folder)
    assert not load.valid
    return [str(p) for p in load.problems]


def test_good_plugins_are_valid():
    for name in ("goodNative:1.0", "goodScript:1.0"):
        load = load_plugin(FIXTURES / name)
        assert load.valid, load.problems
    m = load_plugin(FIXTURES / "goodScript:1.0").manifest
    assert (m.name, m.version, m.engine, m.enabled, m.type, m.execution_context) == (
        "goodScript", "1.0", "python", False, "report", "both")
    assert m.retries == 0 and m.timeout_minutes == 5 and m.parameters == {"window": 3}
    assert m.source == FIXTURES / "goodScript:1.0" / "goodScript:1.0.py"


def test_invalid_json_reports_line_and_column():
    (msg,) = problems("badJson:1.0")
    assert msg.startswith("badJson:1.0: plugin.json: invalid JSON at line 4, column 3")


def test_all_missing_fields_reported_at_once():
    msgs = problems("missingFields:1.0")
    for field in ("enabled", "schedule", "description", "type", "executionContext"):
        assert f"missingFields:1.0: {field}: missing required field" in msgs
    assert len(msgs) == 5


def test_unknown_field_named():
    (msg,) = problems("unknownField:1.0")
    assert msg.startswith("unknownField:1.0: colour: unknown field; allowed: plugin, engine")


def test_wrong_types_each_named():
    msgs = problems("wrongTypes:1.0")
    assert 'wrongTypes:1.0: enabled: must be true or false, got "yes"' in msgs
    assert "wrongTypes:1.0: schedule: must be a string, got 5" in msgs
    assert 'wrongTypes:1.0: retries: must be a whole number, got "3"' in msgs
    assert len(msgs) == 3


def test_invalid_cron_names_the_cron_field():
    (msg,) = problems("badCron:1.0")
    assert msg == "badCron:1.0: schedule: invalid schedule: minute field: 61 is out of range 0-59"


def test_unknown_engine_type_context_all_reported():
    msgs = problems("badEnums:1.0")
    assert any(m.startswith("badEnums:1.0: engine: unknown engine 'java'; use one of R, python, native, nodejs")
               for m in msgs)
    assert any(m.startswith("badEnums:1.0: type: unknown type 'dashboard'") for m in msgs)
    assert any(m.startswith("badEnums:1.0: executionContext: unknown context 'slave'") for m in msgs)


def test_name_must_match_folder():
    (msg,) = problems("nameMismatch:1.0")
    assert msg == ("nameMismatch:1.0: plugin: 'otherName:1.0' must equal the folder name 'nameMismatch:1.0'; "
                   "rename one of them")


def test_missing_source_file():
    (msg,) = problems("missingSource:1.0")
    assert msg.startswith("missingSource:1.0: engine: source file missingSource:1.0.R is missing")


def test_unsafe_plugin_name_rejected():
    msgs = problems("unsafeName:1.0")
    assert len(msgs) == 1
    assert "plugin '../evil;rm -rf $HOME:1.0' contains '/' '..' ' ' ';' '$'" in msgs[0]


@pytest.mark.parametrize("folder_name", ["bad name:1.0", "x;y:1.0", "q'uote:1.0", "d$ollar:1.0", 'dq"x:1.0'])
def test_unsafe_folder_names_rejected(tmp_path: Path, folder_name: str):
    folder = tmp_path / folder_name
    folder.mkdir()
    (folder / "plugin.json").write_text(json.dumps({
        "plugin": folder_name, "engine": "native", "enabled": True, "schedule": "@daily",
        "description": "x", "type": "worker", "executionContext": "master"}))
    load = load_plugin(folder)
    assert not load.valid
    assert any(str(p).startswith(f"{folder_name}: folder: folder name") and "could escape" in str(p)
               for p in load.problems)


def test_folder_without_plugin_json(tmp_path: Path):
    (tmp_path / "empty:1.0").mkdir()
    load = load_plugin(tmp_path / "empty:1.0")
    assert [str(p) for p in load.problems] == [
        "empty:1.0: plugin.json: missing; every plugin folder needs a plugin.json (see docs/plugins.md)"]


def test_shadowed_versions_reported_not_dropped():
    catalog = discover(FIXTURES)
    winners = [p for p in catalog.active if p.manifest and p.manifest.name == "shadow"]
    assert [w.manifest.version for w in winners] == ["2.0"]
    assert sorted((s.load.folder.name, s.by) for s in catalog.shadowed) == [
        ("shadow:1.0", "shadow:2.0"), ("shadow:1.5", "shadow:2.0")]
    assert {p.folder.name for p in catalog.invalid} == {
        "badCron:1.0", "badEnums:1.0", "badJson:1.0", "missingFields:1.0", "missingSource:1.0",
        "nameMismatch:1.0", "unknownField:1.0", "unsafeName:1.0", "wrongTypes:1.0"}


@pytest.mark.parametrize("expr", ["*/10 * * * *", "0 2 * * *", "@daily", "0 0 1 jan,jul mon-fri", "5-10/2 * * * 7",
                                  # Airflow (croniter) accepts these: so do we
                                  "0 0 L * *", "0 9 * * 1#1", "0 0 ? * *", "10-5 * * * *", "0 0 29 2 *"])
def test_valid_crons(expr: str):
    assert cron_problem(expr) is None


@pytest.mark.parametrize(("expr", "why"), [
    ("* * * *", "has 4 fields"),
    ("* 24 * * *", "hour field: 24 is out of range 0-23"),
    ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
    ("* * * foo *", "month field: 'foo' is not a number"),
    ("*/0 * * * *", "minute field: step 0"),
        ("@sometimes", "unknown preset '@sometimes'"),
])
def test_invalid_crons(expr: str, why: str):
    problem = cron_problem(expr)
    assert problem is not None and why in problem


def _write_plugin(folder: Path, engine: str = "native", source: bool = True, docs: bool = True) -> None:
    folder.mkdir()
    (folder / "plugin.json").write_text(json.dumps({
        "plugin": folder.name, "engine": engine, "enabled": True, "schedule": "@daily",
        "description": "x", "type": "worker", "executionContext": "master"}))
    if source:
        (folder / f"{folder.name}.py").write_text("def entrypoint(context):\n    pass\n")
    if docs:
        (folder / "assets").mkdir()
        (folder / "assets" / "index.html").write_text("<h1>docs</h1>")


def test_missing_docs_page_is_a_warning_not_a_problem(tmp_path: Path):
    _write_plugin(tmp_path / "documented:1.0")
    _write_plugin(tmp_path / "undocumented:1.0", docs=False)
    assert load_plugin(tmp_path / "documented:1.0").warnings == ()
    load = load_plugin(tmp_path / "undocumented:1.0")
    assert load.valid
    (warning,) = load.warnings
    assert warning.severity == Severity.WARNING
    assert str(warning) == ("undocumented:1.0: assets/index.html: is missing; the plugin has no documentation page. "
                            "Fix: add the plugin's documentation page there (docs/plugins.md)")


def test_a_folder_is_not_a_source_file_or_a_manifest(tmp_path: Path):
    _write_plugin(tmp_path / "dirSource:1.0", source=False)
    (tmp_path / "dirSource:1.0" / "dirSource:1.0.py").mkdir()
    (msg,) = [str(p) for p in load_plugin(tmp_path / "dirSource:1.0").problems]
    assert msg.startswith("dirSource:1.0: engine: source file dirSource:1.0.py is missing")
    (tmp_path / "dirManifest:1.0" / "plugin.json").mkdir(parents=True)
    (msg,) = [str(p) for p in load_plugin(tmp_path / "dirManifest:1.0").problems]
    assert msg == "dirManifest:1.0: plugin.json: is a folder, not a regular file"


def test_discovery_order_and_name_filter(tmp_path: Path):
    for name in ("zeta:1.0", "alpha:1.0", "alpha:1.10", "alpha:1.9", "_hidden:1.0", ".dot:1.0"):
        _write_plugin(tmp_path / name)
    catalog = discover(tmp_path)
    assert [p.folder.name for p in catalog.active] == ["alpha:1.10", "zeta:1.0"]
    assert all(p.folder.parent == tmp_path for p in catalog.all)
    assert sorted(s.load.folder.name for s in catalog.shadowed) == ["alpha:1.0", "alpha:1.9"]
    only = discover(tmp_path, name="zeta")
    assert [p.folder.name for p in only.all] == ["zeta:1.0"]


# --- hostile input: each kind makes only its own folder invalid, with a message naming it --------

@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.hostile import build_tree

    return build_tree(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("folder", sorted(__import__("tests.support.hostile").support.hostile.EXPECTED))
def test_each_hostile_kind_is_named(hostile_root: Path, folder: str):
    from tests.support.hostile import EXPECTED

    field_name, reason = EXPECTED[folder]
    load = load_plugin(hostile_root / folder, hostile_root)
    assert not load.valid
    messages = [str(p) for p in load.problems]
    assert all(m.startswith(f"{folder}: ") for m in messages), messages
    assert any(m.startswith(f"{folder}: {field_name}: ") and reason in m for m in messages), messages
    assert all(len(m) < 2000 for m in messages)  # inputs are cut, never echoed whole


def test_hostile_folders_leave_the_others_valid(hostile_root: Path):
    from tests.support.hostile import EXPECTED, SKIPPED, VALID

    catalog = discover(hostile_root)
    assert sorted(p.manifest.name for p in catalog.active) == sorted(VALID)
    assert sorted(p.folder.name for p in catalog.invalid) == sorted(EXPECTED)
    assert sorted(s.name for s in catalog.skipped) == sorted(SKIPPED)
    seen = [p.folder.name for p in catalog.all] + [s.name for s in catalog.skipped]
    assert sorted(seen) == sorted(e.name for e in hostile_root.iterdir())  # every entry exactly once


def test_any_exception_while_validating_stays_in_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import meccano.contract.manifest as manifest

    _write_plugin(tmp_path / "fine:1.0")
    _write_plugin(tmp_path / "explodes:1.0")
    real = manifest._depth_problem

    def boom(raw):
        if raw.get("plugin") == "explodes:1.0":
            raise RuntimeError("something nobody foresaw")
        return real(raw)

    monkeypatch.setattr(manifest, "_depth_problem", boom)
    catalog = discover(tmp_path)
    assert [p.folder.name for p in catalog.active] == ["fine:1.0"]
    (bad,) = catalog.invalid
    assert [str(p) for p in bad.problems] == [
        "explodes:1.0: plugin.json: could not be read or validated: RuntimeError: something nobody foresaw"]


def test_symlinked_folder_inside_the_plugins_folder_is_accepted(tmp_path: Path):
    _write_plugin(tmp_path / "real:1.0")
    (tmp_path / "_store").mkdir()
    _write_plugin(tmp_path / "_store" / "alias:1.0")
    (tmp_path / "alias:1.0").symlink_to(tmp_path / "_store" / "alias:1.0", target_is_directory=True)
    catalog = discover(tmp_path)
    assert [p.folder.name for p in catalog.active] == ["alias:1.0", "real:1.0"]


def test_plugin_json_itself_may_not_be_a_link(tmp_path: Path):
    _write_plugin(tmp_path / "linked:1.0")
    manifest_file = tmp_path / "linked:1.0" / "plugin.json"
    manifest_file.rename(tmp_path / "linked:1.0" / "real.json")
    manifest_file.symlink_to("real.json")
    (msg,) = [str(p) for p in load_plugin(tmp_path / "linked:1.0").problems]
    assert msg.startswith("linked:1.0: plugin.json: is a symbolic link")


@pytest.mark.parametrize(("expr", "why"), [
    ("0 0 31 2 *", "never fires"),
    ("0 0 30 2 *", "never fires"),
    ("* * * * * *", "has 6 fields"),
    ("0 0 1 1 * 2030", "has 6 fields"),
    ("61 * * * *", "minute field: 61 is out of range 0-59"),
    ("0 0 L-40 * *", "not accepted by Airflow"),
    ("x" * 101, "longer than 100 characters"),
])
def test_airflow_rejects_or_never_fires(expr: str, why: str):
    problem = cron_problem(expr)
    assert problem is not None and why in problem, problem


@pytest.mark.parametrize(("over", "field_name", "reason"), [
    ({"retries": 21}, "retries", "21 must be 20 or less"),
    ({"retries": True}, "retries", "must be a whole number, got true"),
    ({"retryDelayMinutes": 0}, "retryDelayMinutes", "0 must be greater than 0"),
    ({"timeoutMinutes": 10081}, "timeoutMinutes", "10081 must be 10080 or less"),
    ({"owner": "a\nb"}, "owner", "must not hold control characters"),
    ({"tasks": ["a", "a"]}, "tasks", "lists a function twice"),
    ({"tasks": []}, "tasks", "must not be empty"),
    ({"outlets": ["s3://{bucket:>10}/x"]}, "outlets", "is not allowed"),
    ({"outlets": ["s3://{bucket!r}/x"]}, "outlets", "is not allowed"),
    ({"outlets": ["s3://{0}/x"]}, "outlets", "is not allowed"),
    ({"outlets": ["no scheme {bucket}"]}, "outlets", "is not an asset URI"),
    ({"outlets": ["s3://{bucket"]}, "outlets", "literal braces"),
    ({"parameters": {"bad key": 1}}, "parameters.bad key", "not a Python identifier"),
    ({"parameterSchemas": {"n": {"type": "integer"}}}, "parameterSchemas.n", "no parameter 'n'"),
    ({"parameters": {"n": 1}, "parameterSchemas": {"n": {"type": "nonsense"}}}, "parameterSchemas.n",
     "not a valid JSON schema"),
    ({"parameters": {"n": 1}, "parameterSchemas": {"n": {"default": 2}}}, "parameterSchemas.n",
     "must not hold 'default'"),
    ({"description": " "}, "description", "must not be empty"),
    ({"scheduleFromConfig": "other"}, "scheduleFromConfig", "unknown key 'other'; use one of warninglimit"),
])
def test_field_bounds_each_named(tmp_path: Path, over: dict, field_name: str, reason: str):
    folder = tmp_path / "bounded:1.0"
    _write_plugin(folder)
    raw = json.loads((folder / "plugin.json").read_text())
    (folder / "plugin.json").write_text(json.dumps({**raw, **over}))
    messages = [str(p) for p in load_plugin(folder).problems]
    assert any(m.startswith(f"bounded:1.0: {field_name}: ") and reason in m for m in messages), messages


def test_parameters_with_schemas(tmp_path: Path):
    from tests.support.hostile import FIXTURES as HOSTILE

    m = load_plugin(HOSTILE / "withParams:1.0").manifest
    assert m is not None and m.parameters == {"windowHours": 24, "mode": "fast"}
    assert m.param_schema("windowHours") == {"type": "integer", "minimum": 1, "maximum": 720,
                                             "description": "hours of readings"}
    plain = load_plugin(FIXTURES / "goodScript:1.0").manifest
    assert plain.param_schema("window") == {"type": "integer"}  # the type of its default


SCHEMA_FILE = Path(__file__).resolve().parents[2] / "plugin.schema.json"


def test_published_schema_is_generated_from_the_model():
    from meccano.contract.manifest import json_schema

    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "plugin.schema.json is stale: PYTHONPATH=include python -m meccano plugins schema > plugin.schema.json")


def test_published_schema_agrees_with_the_model_on_the_fixtures():
    import jsonschema

    from tests.support.hostile import FIXTURES as HOSTILE

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    shipped = Path(__file__).resolve().parents[2] / "meccano_plugins"
    for folder in [*shipped.iterdir(), FIXTURES / "goodNative:1.0", HOSTILE / "withParams:1.0"]:
        assert list(validator.iter_errors(json.loads((folder / "plugin.json").read_text()))) == [], folder
    for folder in (FIXTURES / "unknownField:1.0", FIXTURES / "wrongTypes:1.0", FIXTURES / "badEnums:1.0",
                   HOSTILE / "hugeTimeout:1.0", HOSTILE / "longDescription:1.0", HOSTILE / "meccano_invalid_good:1.0"):
        assert list(validator.iter_errors(json.loads((folder / "plugin.json").read_text()))) != [], folder


def test_no_trailing_newline_slips_through_a_name_pattern():
    from meccano.contract.manifest import split_plugin_id
    from meccano.reports.store import FILE_RE, NAME_RE, STAMP_RE
    from meccano.settings.tables import parse_tables

    assert split_plugin_id("a:1.0\n") is None and split_plugin_id("a\n:1.0") is None
    assert not NAME_RE.fullmatch("report\n") and not FILE_RE.fullmatch("a.png\n")
    assert not STAMP_RE.fullmatch("20261126T200005123456Z\n")
    with pytest.raises(ValueError, match=r"export\.tables"):  # a config.yml problem: raised at load
        parse_tables([{"table": "Facts\n"}])
    with pytest.raises(ValueError, match="prefix"):
        parse_tables([{"table": "Facts", "prefix": "facts\n"}])


def test_folder_name_that_is_not_utf8(tmp_path: Path):
    import os

    _write_plugin(tmp_path / "fine:1.0")
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"bad\xff:1.0"))
    catalog = discover(tmp_path)
    assert [p.folder.name for p in catalog.active] == ["fine:1.0"]
    (bad,) = catalog.invalid
    messages = [str(p) for p in bad.problems]
    assert messages[0].startswith("bad\ufffd:1.0: folder: folder name 'bad\ufffd:1.0' is not of the form")
    for message in messages:
        message.encode("utf-8")  # printable and storable anywhere


def test_a_plugin_json_may_name_its_schema_for_editors(tmp_path: Path):
    import jsonschema

    _write_plugin(tmp_path / "edited:1.0")
    path = tmp_path / "edited:1.0" / "plugin.json"
    raw = {"$schema": "../../plugin.schema.json", **json.loads(path.read_text())}
    path.write_text(json.dumps(raw))
    assert load_plugin(tmp_path / "edited:1.0").valid
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(raw)


@pytest.mark.parametrize(("literal", "reason"), [
    ("1e400", "number 1e400 is too large"), ("-1e999", "number -1e999 is too large"),
    ("0." + "1" * 60, "is too large or too long"), ("-" + "9" * 19, "has 19 digits"),
    ("Infinity", "Infinity is not allowed"), ("-Infinity", "-Infinity is not allowed"),
])
def test_numbers_must_be_finite_and_short(tmp_path: Path, literal: str, reason: str):
    _write_plugin(tmp_path / "numbers:1.0")
    path = tmp_path / "numbers:1.0" / "plugin.json"
    path.write_text(path.read_text()[:-1] + f', "parameters": {{"x": {literal}}}}}')
    (msg,) = [str(p) for p in load_plugin(tmp_path / "numbers:1.0").problems]
    assert msg.startswith("numbers:1.0: plugin.json: refused: ") and reason in msg, msg
