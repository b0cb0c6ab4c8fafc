"""Original script plugins run unchanged in every mode: a report writing assets/output.png into
its own folder when meccano_plugins/ is mounted read-only (a real read-only bind mount), an
original R plugin on the demo's SQLite IOTDB refused with what to do, and a failing script's
last lines in the task's error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.plugins import write_plugin

ROOT = Path(__file__).resolve().parents[2]

# A report plugin as the original's were written: relative path, its own folder.
ORIGINAL_REPORT = '''
import base64, os
os.makedirs("assets", exist_ok=True)
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
                       "hKmMIQAAAABJRU5ErkJggg==")
with open("assets/output.png", "wb") as out:
    out.write(PNG)
print("chart written to", os.path.abspath("assets/output.png"))
'''

FAILING_SCRIPT = '''
import os, sys
print("connecting with password", os.environ.get("MYSQL_PASSWORD"))
print("Error in dbConnect: Access denied for user 'sm'@'gateway'", file=sys.stderr)
sys.exit(3)
'''


def _script_plugin(root: Path, name: str, code: str, kind: str = "report", engine: str = "python") -> Path:
    folder = write_plugin(root, f"{name}:1.0", code, engine=engine, ext=".R" if engine == "R" else ".py",
                          description="test", type=kind, executionContext="both")
    (folder / "assets").mkdir()
    (folder / "assets" / "index.html").write_text("<p>doc</p>")
    return folder


@pytest.fixture
def read_only_mount(tmp_path):
    """``tmp_path/src`` mounted read-only at ``tmp_path/ro`` (as compose mounts meccano_plugins/:ro)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    bind = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True, text=True, timeout=30)
    if bind.returncode != 0:
        pytest.fail(f"a read-only bind mount needs mount privileges (run the tests as root, as CI does): "
                    f"{bind.stderr.strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True, text=True,
                                 timeout=30)
        assert remount.returncode == 0, remount.stderr
        yield src, ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True, timeout=30)


def test_original_report_writes_its_chart_in_a_read_only_folder(read_only_mount, sqlite_iotdb, tmp_path,
                                                                  monkeypatch, run_plugin_dag):
    from meccano.reports.store import ReportStore
    from meccano.settings.config import load_settings

    src, ro = read_only_mount
    _script_plugin(src, "legacyChart", ORIGINAL_REPORT)
    with pytest.raises(OSError):
        (ro / "legacyChart:1.0" / "assets" / "probe").write_text("x")  # really read-only
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    run = run_plugin_dag("legacyChart", ro)
    assert run.state == "success"
    store = ReportStore.from_settings(load_settings())
    latest = store.latest("legacyChart")
    assert latest is not None and store.read("legacyChart", latest.stamp, "output.png")[:4] == b"\x89PNG"
    assert not (src / "legacyChart:1.0" / "assets" / "output.png").exists()  # the deployed folder unchanged
    assert not list(Path("/tmp").glob("meccano-plugin-run-*/legacyChart:1.0"))  # the copy is removed


def test_writable_folder_is_not_written_either(sqlite_iotdb, tmp_path, monkeypatch, run_plugin_dag):
    """A script runs as the plugin user in its run folder's copy, even when the deployed folder is writable:
    the chart still becomes the report, the deployed folder is left as it was."""
    from meccano.reports.store import ReportStore
    from meccano.settings.config import load_settings

    _script_plugin(tmp_path / "plugins", "inPlace", ORIGINAL_REPORT)
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    assert run_plugin_dag("inPlace", tmp_path / "plugins").state == "success"
    assert not (tmp_path / "plugins" / "inPlace:1.0" / "assets" / "output.png").exists()
    store = ReportStore.from_settings(load_settings())
    latest = store.latest("inPlace")
    assert latest is not None and store.read("inPlace", latest.stamp, "output.png")[:4] == b"\x89PNG"


def test_original_r_plugin_on_sqlite_fails_saying_why_and_what_to_do(sqlite_iotdb, tmp_path, run_plugin_dag,
                                                                    caplog):
    from meccano.scripts.modes import sqlite_problem

    root = tmp_path / "plugins"
    root.mkdir()
    shutil.copytree(ROOT / "meccano_plugins" / "example_R:1.0", root / "example_R:1.0")
    run = run_plugin_dag("example_R", root)
    assert run.state == "failed"
    why = sqlite_problem("example_R:1.0", "R", root / "example_R:1.0" / "example_R:1.0.R")
    assert why is not None and "MECCANO_IOTDB_SQLITE" in why and "MYSQL_HOST" in why and "RSQLite" in why
    assert "it reads the IOTDB through MYSQL_* with RMySQL" in caplog.text
    # a plugin that reads the SQLite IOTDB itself is not refused
    assert sqlite_problem("deviceAvgTime:1.0", "R",
                          ROOT / "meccano_plugins" / "deviceAvgTime:1.0" / "deviceAvgTime:1.0.R") is None


def test_failing_script_error_carries_its_last_lines_redacted(sqlite_iotdb, tmp_path, monkeypatch, capfd,
                                                             run_plugin_dag):
    root = tmp_path / "plugins"
    _script_plugin(root, "failingScript", FAILING_SCRIPT + "\n# MECCANO_IOTDB_SQLITE aware\n", kind="worker")
    monkeypatch.setenv("MYSQL_PASSWORD", "script-Pass-77")
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", "mysql://sm:script-Pass-77@127.0.0.1:1/IOTDB")
    monkeypatch.delenv("MECCANO_IOTDB_SQLITE")
    assert run_plugin_dag("failingScript", root).state == "failed"
    out = "".join(capfd.readouterr())
    error = out[out.index("Last lines of the plugin's output:"):]
    assert "Access denied for user 'sm'@'gateway'" in error and "connecting with password ***" in error
    assert "script-Pass-77" not in out


def test_read_only_copy_leaves_out_pipes_and_keeps_links(read_only_mount):
    """A named pipe in a read-only plugin folder would block the copy forever: it is left out; a symlink
    stays a link (nothing outside the folder is copied in); the copy is removed afterwards."""
    import os

    from meccano.scripts.modes import remove_workdir, run_folder

    src, ro = read_only_mount
    folder = src / "piped:1.0"
    (folder / "assets").mkdir(parents=True)
    (folder / "piped:1.0.py").write_text("print('x')\n")
    os.mkfifo(folder / "assets" / "pipe")
    (folder / "assets" / "link").symlink_to("/etc/hostname")
    run = run_folder(ro / "piped:1.0")
    workdir, scratch = run.workdir, run.root
    try:
        assert scratch is not None and workdir != ro / "piped:1.0"
        assert (workdir / "piped:1.0.py").read_text() == "print('x')\n"
        assert not (workdir / "assets" / "pipe").exists()
        assert (workdir / "assets" / "link").is_symlink()
    finally:
        remove_workdir(scratch)
    assert not scratch.exists()


def test_sqlite_check_never_reads_a_pipe(tmp_path):
    """The SQLite refusal reads the script bounded and regular-files-only: a source that is a pipe is not
    refused (it would fail on its own) and never blocks."""
    import os
    import threading

    from meccano.scripts.modes import sqlite_problem

    source = tmp_path / "x:1.0.R"
    os.mkfifo(source)
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(sqlite_problem("x:1.0", "R", source)), daemon=True)
    worker.start()
    worker.join(30)  # a bound on the test itself: a blocking read would leave the thread waiting
    assert not worker.is_alive(), "the SQLite check blocked on a named pipe"
    assert result == [None]


def _sqlite_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A demo-like SQLite IOTDB in a folder of its own (root's), and a root-only file elsewhere (the victim)."""
    import os

    folder = tmp_path / "iotdb"
    folder.mkdir(mode=0o700)
    db = folder / "iotdb.sqlite"
    db.write_bytes(b"SQLite format 3\x00")
    os.chmod(db, 0o600)
    (folder / "iotdb.sqlite-wal").write_bytes(b"")
    os.chmod(folder / "iotdb.sqlite-wal", 0o600)
    victim = tmp_path / "victim"
    victim.write_text("root only")
    os.chmod(victim, 0o600)
    return db, victim


def test_sharing_the_sqlite_iotdb_never_follows_a_link_planted_for_a_wal_file(tmp_path, monkeypatch):
    """The plugin user's group may write the IOTDB's folder, so it can put a link where a WAL file was, even
    between the check of the file and the change of its mode: the link's target is never changed."""
    import os
    import pwd
    import stat

    from meccano.scripts.modes import share_sqlite_iotdb

    db, victim = _sqlite_folder(tmp_path)
    wal = db.with_name("iotdb.sqlite-wal")
    group = pwd.getpwnam("meccano-plugin").pw_gid
    real_stat, real_open, swapped = os.stat, os.open, []

    def swap() -> None:  # the plugin user's move, right after the worker looked at the WAL file
        if not swapped:
            swapped.append(True)
            os.unlink(wal)
            os.symlink(victim, wal)

    def stat_then_swap(name, *args, **kwargs):
        result = real_stat(name, *args, **kwargs)
        if str(name).endswith("-wal"):
            swap()
        return result

    def open_then_swap(name, *args, **kwargs):
        result = real_open(name, *args, **kwargs)
        if str(name).endswith("-wal"):
            swap()
        return result

    monkeypatch.setattr(os, "stat", stat_then_swap)
    monkeypatch.setattr(os, "open", open_then_swap)
    assert share_sqlite_iotdb(db, "meccano-plugin")
    monkeypatch.undo()
    assert swapped
    info = os.stat(victim)
    assert (oct(stat.S_IMODE(info.st_mode)), info.st_gid) == (oct(0o600), 0)  # the link's target: unchanged
    shared = os.stat(db)
    assert (oct(stat.S_IMODE(shared.st_mode)), shared.st_gid) == (oct(0o660), group)  # the IOTDB itself: shared
    folder = os.stat(db.parent)
    assert (oct(stat.S_IMODE(folder.st_mode)), folder.st_gid) == (oct(0o2770), group)


def test_a_link_or_a_foreign_file_in_place_of_a_wal_file_is_left_alone(tmp_path):
    import os
    import stat

    from meccano.scripts.modes import share_sqlite_iotdb

    db, victim = _sqlite_folder(tmp_path)
    os.unlink(db.with_name("iotdb.sqlite-wal"))
    os.symlink(victim, db.with_name("iotdb.sqlite-wal"))
    shm = db.with_name("iotdb.sqlite-shm")
    shm.write_bytes(b"")
    os.chown(shm, 12345, 12345)
    os.chmod(shm, 0o600)
    os.link(victim, db.with_name("iotdb.sqlite-journal"))  # a second name of a root file: never shared
    assert share_sqlite_iotdb(db, "meccano-plugin")
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600 and os.stat(victim).st_gid == 0
    assert (stat.S_IMODE(os.stat(shm).st_mode), os.stat(shm).st_gid) == (0o600, 12345)
