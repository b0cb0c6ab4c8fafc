"""Hostile plugin runs at once on one worker (issue 34, High 1 and 2): the run folder's hand-back and the report
folder hold against a second process of the plugin user that swaps names for symlinks while the root runner and the
worker act on them.

* **The hand-back race.** A script leaves a 0777 folder of set-id files, each beside a symlink to a root-owned 0600
  file; a second process of the plugin user keeps swapping every file with its symlink (``renameat2`` with
  ``RENAME_EXCHANGE``, atomic) while the runner hands the folder back. Through names (``chmod`` follows links) the
  root file became 0777 in 2 of 4 tries; through descriptors opened with ``O_NOFOLLOW`` it never changes, over many
  rounds, and no set-id file of the caller is left.
* **The report folder.** The run folder itself stays the worker's (0711), so a script can neither rename
  ``report/`` nor put a link in its place; and a report folder, an ``assets/`` folder or a chart that is a link is
  never followed when the worker picks up the legacy chart or publishes.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from meccano.scripts import runner
from tests.support.plugins import write_plugin

RUN_AS = "meccano-plugin"
PNG = b"\x89PNG\r\n\x1a\n"
FILES = 120
ROUNDS = 25

# The attacker: the plugin user, holding a descriptor on the sub-folder, swaps each file with its link in a tight
# loop (RENAME_EXCHANGE: both names always exist, so the runner's stat and its change see different inodes).
SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = int(sys.argv[1])
n = int(sys.argv[2])
names = [(f"f{i}".encode(), f"l{i}".encode()) for i in range(n)]
print("ready", flush=True)
while True:
    for a, b in names:
        libc.renameat2(fd, a, fd, b, 2)  # RENAME_EXCHANGE
"""


def _as_plugin_user() -> None:
    user = pwd.getpwnam(RUN_AS)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[Path]:
    """A root-owned 0600 file in a 0700 folder, the plugin user can see no part of it."""
    folder = tmp_path / "root-only"
    folder.mkdir(mode=0o700)
    target = folder / "secret.conf"
    target.write_text("root's")
    os.chmod(target, 0o600)
    os.chmod(tmp_path, 0o755)
    yield target


def _identity() -> runner.Identity:
    user = pwd.getpwnam(RUN_AS)
    return runner.Identity(user.pw_uid, user.pw_gid, os.getuid(), os.getgid())


def _prepare_round(run_dir: Path, victim: Path, who: runner.Identity) -> Path:
    """What the script leaves: ``evil/`` (0777) with set-id files f<i> and links l<i> to the victim."""
    evil = run_dir / "evil"
    evil.mkdir()
    for i in range(FILES):
        (evil / f"f{i}").write_bytes(b"#!/bin/sh\n")
        os.chown(evil / f"f{i}", who.uid, who.gid)
        os.chmod(evil / f"f{i}", 0o6777)
        os.symlink(victim, evil / f"l{i}")
        os.chown(evil / f"l{i}", who.uid, who.gid, follow_symlinks=False)
    os.chown(evil, who.uid, who.gid)
    os.chmod(evil, 0o777)
    return evil


@pytest.mark.skipif(os.geteuid() != 0, reason="the runner's hand-back runs as root (make test runs as root)")
def test_the_hand_back_never_changes_a_file_behind_a_swapped_link(tmp_path: Path, victim: Path) -> None:
    assert hasattr(ctypes.CDLL(None), "renameat2")  # glibc >= 2.28: the attack is real here
    who = _identity()
    crossings: list[str] = []
    for round_no in range(ROUNDS):
        run_dir = Path(tempfile.mkdtemp(prefix="meccano-race-", dir=tmp_path))
        runner.hand_over(str(run_dir), who)
        evil = _prepare_round(run_dir, victim, who)
        evil_fd = os.open(evil, os.O_RDONLY | os.O_DIRECTORY)  # what the other run kept open
        swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(evil_fd), str(FILES)], stdout=subprocess.PIPE,
                                   preexec_fn=_as_plugin_user, pass_fds=(evil_fd,))
        os.close(evil_fd)
        try:
            assert swapper.stdout is not None and swapper.stdout.readline().strip() == b"ready"
            runner.hand_back(str(run_dir), who)
        finally:
            swapper.kill()
            swapper.wait()
        info = os.stat(victim)
        if stat.S_IMODE(info.st_mode) != 0o600 or info.st_uid != 0:
            crossings.append(f"round {round_no}: victim is {oct(info.st_mode)} uid {info.st_uid}")
            os.chmod(victim, 0o600)
        for entry in evil.iterdir():
            mode = entry.lstat()
            if stat.S_ISREG(mode.st_mode) and mode.st_uid == who.caller_uid and mode.st_mode & 0o6000:
                crossings.append(f"round {round_no}: {entry.name} is set-id and the caller's")
    assert crossings == []
    assert victim.read_text() == "root's"


@pytest.mark.skipif(os.geteuid() != 0, reason="the runner's hand-back runs as root (make test runs as root)")
def test_the_hand_back_leaves_the_caller_nothing_the_plugin_user_can_still_change(tmp_path: Path) -> None:
    who = _identity()
    run_dir = Path(tempfile.mkdtemp(prefix="meccano-run-", dir=tmp_path))
    (run_dir / "report").mkdir()
    runner.hand_over(str(run_dir), who)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o711 and run_dir.stat().st_uid == who.caller_uid
    assert (run_dir / "report").stat().st_uid == who.uid
    open_dir = run_dir / "report" / "open"
    open_dir.mkdir(mode=0o777)
    os.chmod(open_dir, 0o3777)
    (open_dir / "chart.png").write_bytes(PNG)
    os.chmod(open_dir / "chart.png", 0o6666)
    (run_dir / "report" / "linked").write_bytes(b"x")
    os.link(run_dir / "report" / "linked", tmp_path / "kept-elsewhere")
    for path in (open_dir, open_dir / "chart.png", run_dir / "report" / "linked"):
        os.chown(path, who.uid, who.gid)
    runner.hand_back(str(run_dir), who)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    folder, chart = open_dir.stat(), (open_dir / "chart.png").stat()
    assert (folder.st_uid, stat.S_IMODE(folder.st_mode)) == (who.caller_uid, 0o755)  # no other write, no set-id
    assert (chart.st_uid, stat.S_IMODE(chart.st_mode)) == (who.caller_uid, 0o644)
    # a file also linked elsewhere is not given to the caller: whoever holds the other name would keep it
    assert (run_dir / "report" / "linked").stat().st_uid == who.uid


@pytest.mark.skipif(os.geteuid() != 0, reason="the runner's hand-over runs as root (make test runs as root)")
def test_a_run_folder_that_is_a_link_or_someone_elses_is_refused(tmp_path: Path) -> None:
    who = _identity()
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    with pytest.raises(OSError):
        runner.hand_over(str(tmp_path / "link"), who)
    os.chown(real, who.uid, who.gid)
    with pytest.raises(PermissionError, match="not by the caller"):
        runner.hand_over(str(real), who)


# -- the report folder ------------------------------------------------------------------------------------------

def test_a_report_folder_that_is_a_link_publishes_nothing(tmp_path: Path, caplog) -> None:
    from meccano.reports.store import folder_listing, publishable_files

    private = tmp_path / "worker-only"
    private.mkdir(mode=0o700)
    (private / "config.json").write_text('{"password": "x"}')
    (private / "output.png").write_bytes(PNG)
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(private, run / "report")
    assert publishable_files(run / "report") == {}
    assert folder_listing(run / "report") == []
    assert "is a symbolic link: nothing published" in caplog.text


def test_the_legacy_chart_is_never_read_or_written_through_a_link(tmp_path: Path) -> None:
    from meccano.scripts.modes import RunFolder
    from meccano.scripts.operators import _pick_up_legacy_chart

    root = tmp_path / "run"
    workdir = root / "p:1.0"
    (workdir / "assets").mkdir(parents=True)
    private = tmp_path / "worker-only"
    private.mkdir(mode=0o700)
    run = RunFolder(root, workdir, root / "report", root / "home", root / "tmp")
    # the report folder is a link to a worker-only folder: the chart is not written there
    os.symlink(private, root / "report")
    (workdir / "assets" / "output.png").write_bytes(PNG)
    _pick_up_legacy_chart(run, started=0)
    assert list(private.iterdir()) == []
    # assets/ is a link to a folder with a chart the script could not read: not picked up
    (root / "report").unlink()
    (root / "report").mkdir()
    (private / "output.png").write_bytes(b"worker's own chart")
    (workdir / "assets" / "output.png").unlink()
    (workdir / "assets").rmdir()
    os.symlink(private, workdir / "assets")
    _pick_up_legacy_chart(run, started=0)
    assert list((root / "report").iterdir()) == []
    # the chart itself is a link: not picked up; a real fresh chart is
    (workdir / "assets").unlink()
    (workdir / "assets").mkdir()
    os.symlink(private / "output.png", workdir / "assets" / "output.png")
    _pick_up_legacy_chart(run, started=0)
    assert list((root / "report").iterdir()) == []
    (workdir / "assets" / "output.png").unlink()
    (workdir / "assets" / "output.png").write_bytes(PNG)
    _pick_up_legacy_chart(run, started=0)
    assert (root / "report" / "output.png").read_bytes() == PNG


SWAP_REPORT = r'''
import json, os, shutil
report = os.environ["MECCANO_REPORT_DIR"]
params = json.loads(os.environ["MECCANO_PARAMETERS"])
tried = {}
for what, act in (("rename", lambda: os.rename(report, report + ".gone")),
                  ("remove", lambda: shutil.rmtree(report)),
                  ("link beside", lambda: os.symlink(params["private"], report + "2"))):
    try:
        act()
        tried[what] = "done"
    except OSError as exc:
        tried[what] = exc.strerror
print("TRIED=" + json.dumps(tried, sort_keys=True), flush=True)
open(os.path.join(report, "output.png"), "wb").write(PNG)
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts run as the plugin user from a root worker here")
def test_a_script_cannot_replace_its_report_folder_by_a_link(tmp_path: Path, run_plugin_dag, monkeypatch, capfd):
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.delenv("MECCANO_IOTDB_SQLITE", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", "mysql://u:iotdb-pa55word@127.0.0.1:1/IOTDB")
    private = tmp_path / "worker-only"
    private.mkdir(mode=0o700)
    (private / "config.json").write_text('{"secret": "worker-config-0600"}')
    os.chmod(tmp_path, 0o755)
    write_plugin(tmp_path / "plugins", "swapper:1.0", SWAP_REPORT.replace("PNG", repr(PNG)), type="report",
                 parameters={"private": str(private)})
    run = run_plugin_dag("swapper", tmp_path / "plugins")
    out = capfd.readouterr()
    log = out.out + out.err
    assert run.state == "success", log[-3000:]
    found = re.search(r"TRIED=(\{[^}]*\})", log)
    assert found, log[-3000:]
    tried = json.loads(found.group(1))
    assert tried == {"rename": "Permission denied", "remove": "Permission denied", "link beside": "Permission denied"}
    from meccano.reports.store import ReportStore
    from meccano.settings.config import load_settings

    store = ReportStore.from_settings(load_settings())
    latest = store.latest("swapper")
    assert latest is not None and latest.files == ("output.png",)
    assert store.read("swapper", latest.stamp, "output.png") == PNG


ATTACK_AFTER_HAND_BACK = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = int(sys.argv[1])
results = {}
for what, call in (("swap", lambda: libc.renameat2(fd, b"output.png", fd, b"decoy", 2)),
                   ("create", lambda: os.open("planted.json", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)),
                   ("unlink", lambda: os.unlink("output.png", dir_fd=fd))):
    try:
        code = call()
        results[what] = "refused" if isinstance(code, int) and code < 0 and what == "swap" else "done"
    except OSError:
        results[what] = "refused"
print(results, flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the runner's hand-back runs as root (make test runs as root)")
def test_another_run_keeps_no_hold_on_a_report_folder_once_it_is_handed_back(tmp_path: Path, victim: Path) -> None:
    """Another run of the plugin user opened this run's report folder while it ran; once the folder is handed back
    it can no longer swap a report file for a link, plant a file or remove one, and publishing takes only what
    the script wrote (through descriptors, never a link)."""
    from meccano.reports.store import publishable_files

    who = _identity()
    run_dir = Path(tempfile.mkdtemp(prefix="meccano-run-", dir=tmp_path))
    (run_dir / "report").mkdir()
    runner.hand_over(str(run_dir), who)
    report = run_dir / "report"
    os.chmod(report, 0o777)  # the script opened its folder to everyone
    (report / "output.png").write_bytes(PNG)
    os.symlink(victim, report / "decoy")
    for path in (report / "output.png", report / "decoy"):
        os.chown(path, who.uid, who.gid, follow_symlinks=False)
    held = os.open(report, os.O_RDONLY | os.O_DIRECTORY)  # what the other run kept open
    runner.hand_back(str(run_dir), who)
    try:
        done = subprocess.run([sys.executable, "-c", ATTACK_AFTER_HAND_BACK, str(held)], capture_output=True,
                              text=True, preexec_fn=_as_plugin_user, pass_fds=(held,), timeout=60)
    finally:
        os.close(held)
    assert done.stdout.strip() == "{'swap': 'refused', 'create': 'refused', 'unlink': 'refused'}", done.stderr
    assert publishable_files(report) == {"output.png": PNG}
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600
