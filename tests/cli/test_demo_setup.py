"""The demo's set-up path keeps the worker's files to the worker: script plugins run as another local user
(``meccano-plugin``), who must not read task logs or Airflow's SQLite ``airflow.db`` (users, connections, the
runs' conf). Without starting the demo: its set-up step, then Airflow's own code writing a task log and
migrating the metadata database with the demo's environment."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from meccano.cli.demo import PRIVATE_TASK_LOGS, demo_environment, keep_state_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_an_earlier_demos_files_are_closed_to_other_users(tmp_path: Path):
    state = tmp_path / "state"
    home = state / "airflow"
    (home / "logs" / "dag_id=x").mkdir(parents=True)
    (state / "logs").mkdir()
    (home / "airflow.db").write_bytes(b"SQLite format 3\x00")
    for folder in (state, state / "logs", home, home / "logs"):
        folder.chmod(0o755)
    (home / "airflow.db").chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        keep_state_private(state)
        assert os.umask(0o022) == 0o077  # what the demo and every component it starts create: the worker's alone
    finally:
        os.umask(old_umask)
    for folder in (state, state / "logs", home, home / "logs"):
        assert _mode(folder) & 0o007 == 0, folder
    assert _mode(home / "airflow.db") == 0o600


def test_task_logs_and_the_metadata_database_of_the_demo_are_the_workers_alone(tmp_path: Path, monkeypatch):
    """Airflow writes a task log (``airflow.sdk.log.init_log_file``, what the task supervisor calls) and migrates
    its SQLite database with the demo's environment, after the demo's set-up step: nothing is readable by others."""
    for name in list(os.environ):  # the demo's environment, not the test session's Airflow
        if name.startswith(("AIRFLOW", "MECCANO_", "EXPORT_")):
            monkeypatch.delenv(name)
    state = tmp_path / "state"
    state.mkdir()
    env = {**demo_environment(18080, state), **PRIVATE_TASK_LOGS}
    assert {k: env[k] for k in PRIVATE_TASK_LOGS} == {
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600"}
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir()
    code = ("import os, sys\n"
            "from pathlib import Path\n"
            "from meccano.cli.demo import keep_state_private\n"
            "keep_state_private(Path(sys.argv[1]))\n"
            "from airflow.sdk.log import init_log_file\n"
            "path = init_log_file('dag_id=probe/run_id=manual__1/task_id=t/attempt=1.log')\n"
            "print(path)\n"
            "import subprocess\n"
            "subprocess.run([sys.argv[2], 'db', 'migrate'], check=True, capture_output=True)\n")
    airflow = str(Path(sys.executable).parent / "airflow")
    done = subprocess.run([sys.executable, "-c", code, str(state), airflow], env={**env, "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log_file = Path(done.stdout.strip().splitlines()[-1])
    assert log_file.is_file() and str(log_file).startswith(str(home / "logs"))
    assert _mode(log_file) == 0o600
    folder = log_file.parent
    while folder != home:
        assert _mode(folder) & 0o077 == 0, (folder, oct(_mode(folder)))
        folder = folder.parent
    assert (home / "airflow.db").is_file()
    for path in home.iterdir():
        assert _mode(path) & 0o007 == 0, (path, oct(_mode(path)))
    assert _mode(home / "airflow.db") & 0o077 == 0


def test_the_image_keeps_task_logs_and_airflow_home_to_the_worker():
    """The image's side of the same boundary (the image itself runs in tests/deploy/test_compose_up.py): Airflow's log
    permission knobs, the entrypoint's umask, no access for others to AIRFLOW_HOME."""
    root = Path(__file__).resolve().parents[2]
    dockerfile = (root / "docker" / "Dockerfile").read_text()
    for name, value in PRIVATE_TASK_LOGS.items():
        assert f"{name}={value}" in dockerfile, name
    assert "chmod -R g+rwX,o-rwx /opt/airflow /home/airflow" in dockerfile
    entrypoint = (root / "docker" / "entrypoint.sh").read_text()
    assert entrypoint.index("umask 0007") < entrypoint.index("exec ")
    assert "umask 077" in (root / "scripts" / "demo.sh").read_text()
