"""Working folders: one per OS user, mode 0700, never a planted folder or link; run ids that differ
never share a folder."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from meccano.errors import UnsafeFile
from meccano.files.names import MAX_LENGTH, safe_component
from meccano.files.private import private_folder


def test_run_ids_that_differ_map_to_folders_that_differ():
    ids = ["manual__2026-01-01T00:00+00:00", "manual__2026-01-01T00_00+00_00", "manual__2026-01-01T00:00_00:00",
           "a:b", "a+b", "a_b", "a~3ab", "..", "_..", ".", "", "~", "é", "e", "x" * 300, "x" * 299 + "y"]
    names = [safe_component(i) for i in ids]
    assert len(set(names)) == len(ids), dict(zip(ids, names, strict=True))
    for name in names:
        assert name not in ("", ".", "..") and not name.startswith(".") and "/" not in name
        assert len(name) <= MAX_LENGTH


def test_names_already_safe_keep_their_folder():
    for value in ("scheduled__2026-03-01T02_00_00", "deviceAvgTime", "run-1.a_b", "x" * MAX_LENGTH):
        assert safe_component(value) == value


def test_a_working_folder_is_this_users_and_closed(tmp_path: Path):
    folder = private_folder(tmp_path, "meccano-work")
    assert folder == tmp_path / f"meccano-work-{os.getuid()}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o777)  # left open by an older version: closed again
    assert private_folder(tmp_path, "meccano-work") == folder and stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_planted_link_or_foreign_folder_is_refused(tmp_path: Path):
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    (tmp_path / f"meccano-work-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(UnsafeFile, match="a symlink"):
        private_folder(tmp_path, "meccano-work")
    if os.getuid() == 0:  # as root a folder owned by another user can be made
        foreign = tmp_path / f"meccano-other-{os.getuid()}"
        foreign.mkdir()
        os.chown(foreign, 12345, 12345)
        with pytest.raises(UnsafeFile, match="owned by uid 12345"):
            private_folder(tmp_path, "meccano-other")


def test_report_scratch_is_private():
    from meccano.plugins.native import report_output_dir

    class M:
        name = "updatesByDevice"

    out = report_output_dir(M(), "manual__2026-01-01T00:00+00:00", fresh=True)  # type: ignore[arg-type]
    base = Path(tempfile.gettempdir()) / f"meccano-reports-{os.getuid()}"
    assert out.parent.parent == base and stat.S_IMODE(base.stat().st_mode) == 0o700
    other = report_output_dir(M(), "manual__2026-01-01T00_00+00_00")  # type: ignore[arg-type]
    try:
        assert other != out
    finally:
        import shutil

        shutil.rmtree(out)
        shutil.rmtree(other)


def test_a_read_only_plugins_copy_is_private(tmp_path: Path):
    from meccano.scripts import modes

    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "run.py").write_text("print(1)")
    folder.chmod(0o555)  # as on a read-only plugins volume
    run = modes.run_folder(folder)
    copy, scratch = run.workdir, run.root
    try:
        assert scratch is not None and copy.parent == scratch and (copy / "run.py").is_file()
        assert scratch.name.startswith("meccano-plugin-run-") and scratch.name != "meccano-plugin-run-"
        assert stat.S_IMODE(scratch.stat().st_mode) == 0o700
    finally:
        import shutil

        folder.chmod(0o755)
        shutil.rmtree(scratch or copy)


def _plugin_user() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("meccano-plugin")  # made by scripts/plugin-user.sh on every test host
    return entry.pw_uid, entry.pw_gid


def test_the_local_export_folder_defaults_to_the_workers_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Not the shared /tmp, where any local user could create ``/tmp/meccano-export`` first."""
    from meccano.export.location import local_directory, target_url
    from meccano.settings.config import load_settings

    monkeypatch.delenv("EXPORT_LOCALDIRECTORY", raising=False)
    monkeypatch.delenv("EXPORT_BUCKET", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    settings = load_settings(env={"AIRFLOW_HOME": str(tmp_path / "airflow")})
    assert settings.export.local_directory == ""
    assert local_directory(settings) == (tmp_path / "airflow" / "meccano-exports").resolve()
    assert target_url(settings) == f"file://{(tmp_path / 'airflow').resolve()}/meccano-exports/meccano-export"


@pytest.mark.parametrize("planted", ["foreign", "link"])
def test_a_planted_local_export_target_is_refused(planted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Another local user creates the target (or a link to a folder of theirs) before the worker's first export:
    the export stops naming it, and nothing is written there."""
    from meccano.errors import StorageError
    from meccano.export.location import target_root
    from meccano.settings.config import load_settings

    shared = tmp_path / "shared-tmp"
    shared.mkdir(mode=0o1777)
    monkeypatch.setenv("EXPORT_LOCALDIRECTORY", str(shared))
    monkeypatch.delenv("EXPORT_BUCKET", raising=False)
    theirs = shared / "meccano-export"
    if planted == "foreign":
        theirs.mkdir(mode=0o777)
        os.chown(theirs, *_plugin_user())
        why = f"owned by uid {_plugin_user()[0]}"
    else:
        elsewhere = tmp_path / "attackers-folder"
        elsewhere.mkdir()
        theirs.symlink_to(elsewhere)
        why = "a symlink"
    with pytest.raises(StorageError) as refused:
        target_root(load_settings())
    assert str(refused.value) == (
        f"export target folder {theirs.resolve() if planted == 'foreign' else theirs}: not a folder of this user (uid "
        f"{os.getuid()}) but {why}; another local user may have planted it: remove it, or set export.localDirectory "
        "(EXPORT_LOCALDIRECTORY) to a folder of the worker's own. Nothing was exported")
    monkeypatch.setenv("EXPORT_REMOTEDIRECTORY", "facts")
    with pytest.raises(StorageError):  # a remote directory below it changes nothing
        target_root(load_settings())
    assert not any((tmp_path / "attackers-folder").iterdir()) if planted == "link" else not any(theirs.iterdir())


@pytest.mark.parametrize("planted", ["foreign", "link"])
def test_a_planted_staging_folder_gets_nothing_and_blocks_no_run(planted: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, caplog):
    """``meccano-export-staging-<uid>`` planted by another user (the worker cannot remove it from a sticky /tmp):
    the attempt stages in a private ``mkdtemp`` folder, removed with it."""
    import logging

    from meccano.export.context import STAGING, work_folder
    from meccano.settings.config import load_settings

    shared = tmp_path / "shared-tmp"
    shared.mkdir(mode=0o1777)
    monkeypatch.setenv("EXPORT_LOCALDIRECTORY", str(shared))
    theirs = shared / f"{STAGING}-{os.getuid()}"
    if planted == "foreign":
        theirs.mkdir(mode=0o777)
        os.chown(theirs, *_plugin_user())
        watched = theirs
    else:
        watched = tmp_path / "attackers-folder"
        watched.mkdir()
        theirs.symlink_to(watched)
    log = logging.getLogger("test.staging")
    with caplog.at_level(logging.WARNING, logger="test.staging"), work_folder(load_settings(), "run:1", log) as work:
        (work / "part-00000.csv.gz").write_bytes(b"rows")
        assert theirs not in (work, *work.parents) and work.parent.parent == shared  # not through the planted name
        assert stat.S_IMODE(work.parent.stat().st_mode) == 0o700 and work.parent.stat().st_uid == os.getuid()
        private = work.parent
    assert not private.exists()  # the attempt's own folder went with it
    assert list(watched.iterdir()) == []
    assert f"export staging folder {theirs}: not a folder of this user" in caplog.text
