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
