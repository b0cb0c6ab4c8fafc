"""``plugins.isolation``: a worker that cannot switch to the plugin user is named loudly (the task fails at once,
``db check`` lists it), ``none`` runs scripts as the worker and says so, ``pod`` requests a restricted pod of its
own through the cncf.kubernetes provider (no cluster runs here: the pod is read from the request the provider
sends, and from its own pod-building API).

A worker that cannot switch users is a real process: the check runs in a child that drops root for the
unprivileged ``meccano-plugin`` uid (the one non-root user the test hosts let reach the project's Python; it
stands for the image's uid 50000) and, for Kubernetes' ``allowPrivilegeEscalation: false``, sets
``no_new_privs`` with ``prctl`` first.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from meccano.settings.config import IsolationMode
from tests.support.kube_api import kube_api
from tests.support.plugins import write_plugin

ROOT = Path(__file__).resolve().parents[2]
RUN_AS = "meccano-plugin"
OTHER_USER = "nobody"  # an unprivileged user other than the worker's
PR_SET_NO_NEW_PRIVS = 38
IOTDB_PW = "iotdb-pa55word-for-the-pod"
SETTING = "plugins.isolation (MECCANO_PLUGIN_ISOLATION)"

TASK = r'''
import sys
from meccano.scripts.operators import PluginScriptOperator

op = PluginScriptOperator.for_plugin(sys.argv[1], task_id="run")
try:
    op.execute({"run_id": "manual__isolation", "params": {}})
except BaseException as exc:
    print("RAISED", type(exc).__name__, str(exc).replace("\n", " "))
else:
    print("RAN")
'''


def _drop_root(no_new_privs: bool) -> Callable[[], None]:
    user = pwd.getpwnam(RUN_AS)

    def drop() -> None:
        if no_new_privs:
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    return drop


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder the unprivileged child owns (its AIRFLOW_HOME, the plugins, the SQLite IOTDB)."""
    folder = Path(tempfile.mkdtemp(prefix="meccano-isolation-"))
    user = pwd.getpwnam(RUN_AS)
    for sub in ("airflow", "plugins", "iotdb"):
        (folder / sub).mkdir()
    write_plugin(folder / "plugins", "marker:1.0", f"open({str(folder / 'ran')!r}, 'w').write('x')\n")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _child_env(scratch: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MECCANO_", "EXPORT_", "PYTEST"))}
    env.update({"AIRFLOW_HOME": str(scratch / "airflow"), "HOME": str(scratch), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{scratch / 'airflow' / 'airflow.db'}",
                "MECCANO_IOTDB_SQLITE": str(scratch / "iotdb" / "iotdb.sqlite"),
                "MECCANO_PLUGINS_DIR": str(scratch / "plugins"), "MECCANO_REPORTS_DIR": str(scratch / "reports"),
                **extra})
    return env


def _as_worker(scratch: Path, args: list[str], no_new_privs: bool, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=scratch,
                          env=_child_env(scratch, **extra), preexec_fn=_drop_root(no_new_privs))


def test_a_worker_under_no_new_privs_fails_the_script_task_at_once_and_db_check_names_it(scratch: Path):
    # the worker runs as the plugin user's uid here (it can reach the venv); scripts are to run as another user
    other = {"MECCANO_PLUGIN_RUN_AS": OTHER_USER}
    task = _as_worker(scratch, ["-c", TASK, str(scratch / "plugins" / "marker:1.0")], no_new_privs=True, **other)
    out = task.stdout + task.stderr
    assert "RAISED AirflowFailException ScriptIsolationUnavailable: " in task.stdout, out[-3000:]
    assert f"{SETTING} is 'user', but this worker cannot start a script as {OTHER_USER!r}" in task.stdout
    assert "no_new_privs set (NoNewPrivs: 1 in /proc/self/status" in task.stdout
    for fix in ("run the worker as root", "allowPrivilegeEscalation: true", f"set {SETTING} to pod", "or to none"):
        assert fix in task.stdout, fix
    assert not (scratch / "ran").exists()  # nothing started, not even as the worker

    check = _as_worker(scratch, ["-m", "meccano", "db", "check"], no_new_privs=True, **other)
    assert check.returncode == 1, check.stderr[-3000:]
    line = next((x for x in check.stderr.splitlines() if x.startswith("MISSING script isolation")), "")
    assert line.startswith(f"MISSING script isolation ({SETTING}: user): this worker cannot start a script as"), \
        check.stderr[-3000:]
    assert "NoNewPrivs: 1" in line and "every R, python and nodejs task fails at once" in line
    assert "Fix: run the worker as root" in line


def test_a_non_root_worker_without_the_sudo_rule_is_named_too(scratch: Path):
    probe = "from meccano.scripts.isolation import switch_problem; print(switch_problem('meccano-plugin'))"
    done = _as_worker(scratch, ["-c", probe], no_new_privs=False)
    uid = pwd.getpwnam(RUN_AS).pw_uid
    assert done.returncode == 0, done.stderr[-2000:]
    said = done.stdout.strip()
    assert said.startswith(f"it runs as uid {uid}, not root, and ")
    assert ("sudo is not installed" in said) == (shutil.which("sudo") is None)
    assert "no_new_privs" not in said


def test_root_switches_users_even_under_no_new_privs(scratch: Path):
    """no_new_privs stops setuid programs; a root runner calls setuid() itself, which it does not stop."""
    probe = ("import ctypes; assert ctypes.CDLL(None).prctl(38, 1, 0, 0, 0) == 0; "
             "from meccano.scripts.isolation import no_new_privs, switch_problem; "
             "print(no_new_privs(), switch_problem('meccano-plugin'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env=_child_env(scratch))
    assert done.stdout.split() == ["True", "None"], done.stderr[-2000:]


def test_isolation_none_runs_the_script_as_the_worker_and_says_so(tmp_path: Path, run_plugin_dag, sqlite_iotdb,
                                                                   monkeypatch: pytest.MonkeyPatch, capfd):
    monkeypatch.setenv("MECCANO_PLUGIN_ISOLATION", "none")
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    code = ("import json, os\nprint('UID=%d' % os.getuid())\n"
            "open(os.path.join(os.environ['MECCANO_REPORT_DIR'], 'who.json'), 'w').write(json.dumps(os.getuid()))\n"
            "open(os.path.join(os.environ['MECCANO_REPORT_DIR'], 'output.png'), 'wb').write(b'PNG')\n")
    write_plugin(tmp_path / "plugins", "whoami:1.0", code, type="report")
    run = run_plugin_dag("whoami", tmp_path / "plugins")
    out = capfd.readouterr()
    log = out.out + out.err
    assert run.state == "success", log[-3000:]
    assert f"UID={os.getuid()}" in log  # the worker's own uid (root on the test hosts), not meccano-plugin's
    assert f"{SETTING} is 'none': R, python and nodejs plugins run as the worker's own OS user" in log
    from meccano.reports.store import ReportStore
    from meccano.settings.config import load_settings

    store = ReportStore.from_settings(load_settings())
    latest = store.latest("whoami")
    assert latest is not None and json.loads(store.read("whoami", latest.stamp, "who.json")) == os.getuid()


def test_isolation_none_is_stated_by_config_show_and_the_meccano_page(tmp_path: Path, airflow_pool, sqlite_iotdb,
                                                                      monkeypatch: pytest.MonkeyPatch):
    from meccano.web import setup
    from tests.support.web import admin_token, web_client

    write_plugin(tmp_path / "plugins", "quiet:1.0", "")  # a plugins folder holding a plugin: nothing else missing
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(tmp_path / "plugins"))
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("MECCANO_PLUGIN_ISOLATION", "none")
    setup._cache.clear()
    body = web_client(admin_token()).get("/meccano/").text
    assert "<strong>Scripts are not isolated:</strong> plugins.isolation (MECCANO_PLUGIN_ISOLATION) is &#39;none&#39;" \
        in body
    assert body.index("data-notice") < body.index("<h1>Meccano plugins</h1>")
    monkeypatch.setenv("MECCANO_PLUGIN_ISOLATION", "user")
    assert "data-notice" not in web_client(admin_token()).get("/meccano/").text

    from meccano.cli.main import _report_missing
    from meccano.settings.config import load_settings

    monkeypatch.setenv("MECCANO_PLUGIN_ISOLATION", "none")
    monkeypatch.setenv("MECCANO_PLUGIN_RUN_AS", "meccano-nobody")  # none needs no plugin user on the worker
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        missing = _report_missing(load_settings())
    assert not missing, err.getvalue()
    assert err.getvalue().startswith(f"NOTICE {SETTING} is 'none'")


# --- pod -----------------------------------------------------------------------------------------------------

@pytest.fixture
def pod_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MECCANO_PLUGIN_ISOLATION", "pod")
    monkeypatch.setenv("MECCANO_PLUGIN_POD_IMAGE", "registry.example/meccano:2.0.0")
    monkeypatch.setenv("MECCANO_PLUGIN_POD_NAMESPACE", "meccano-scripts")
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", f"mysql://iot:{quote(IOTDB_PW, safe='')}@iotdb.example:3306/IOTDB")
    monkeypatch.delenv("MECCANO_IOTDB_SQLITE", raising=False)
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))


def _pod_spec(pod: object) -> dict:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def _assert_restricted(pod: dict, timeout_seconds: float) -> None:
    user = pwd.getpwnam(RUN_AS)
    spec = pod["spec"]
    assert spec["securityContext"] == {"runAsUser": user.pw_uid, "runAsGroup": user.pw_gid, "runAsNonRoot": True,
                                       "fsGroup": user.pw_gid, "supplementalGroups": [],
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == timeout_seconds + 10 + 30  # the deadline, the kill grace, a margin
    for container in spec["containers"]:  # the script's and the provider's XCom sidecar
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert {"name": "meccano-run", "emptyDir": {}} in spec["volumes"]
    base = spec["containers"][0]
    assert {"name": "meccano-run", "mountPath": "/meccano-run"} in base["volumeMounts"]
    assert base["image"] == "registry.example/meccano:2.0.0"
    assert base["command"][1:] == ["-I", str(ROOT / "include" / "meccano" / "scripts" / "pod_entry.py")]
    assert pod["metadata"]["namespace"] == "meccano-scripts"
    assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "meccano"


def _started_operator(folder: Path) -> object:
    """The script task as it stands when its hook is about to run: get_env() done (in pod mode)."""
    from meccano.scripts.operators import PluginScriptOperator

    op = PluginScriptOperator.for_plugin(str(folder), task_id="run")
    op._plugin_folder = str(folder)
    op.get_env({"run_id": "scheduled__2026-12-07", "params": {}})
    return op


def test_the_pod_isolation_builds_a_restricted_pod_with_only_the_scripts_environment(tmp_path: Path, pod_env,
                                                                                      monkeypatch):
    from meccano.scripts.pod import PodScriptHook, script_pod_operator

    folder = write_plugin(tmp_path / "plugins", "podprobe:1.0", "print('hi')\n", timeoutMinutes=2)
    op = _started_operator(folder)
    assert isinstance(op.subprocess_hook, PodScriptHook)
    kpo = script_pod_operator(op._pod_job, "run")
    pod = _pod_spec(kpo.build_pod_request_obj({}, dry_run=True))  # the real context: the next test
    _assert_restricted(pod, 120 + 10 + 30)  # the runner's deadline: timeoutMinutes, then Airflow's own first
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}
    assert env["MYSQL_PASSWORD"] == IOTDB_PW and env["MYSQL_HOST"] == "iotdb.example"  # no podSecret: a value
    assert not [name for name in env if name.startswith("AIRFLOW")]
    assert "MECCANO_RUN_AS" not in env and "MECCANO_RUN_DIR" not in env
    assert env["MECCANO_PLUGIN_ORIGIN"] == str(folder)  # the image's plugin folder, copied into the run folder
    assert env["MECCANO_PLUGIN_SOURCE"] == "/meccano-run/podprobe:1.0/podprobe:1.0.py"
    assert (env["MECCANO_REPORT_DIR"], env["HOME"], env["TMPDIR"]) == (
        "/meccano-run/report", "/meccano-run/home", "/meccano-run/tmp")
    assert env["MECCANO_RUN_ID"] == "scheduled__2026-12-07" and env["MECCANO_PLUGIN"] == "podprobe:1.0"

    # with a Kubernetes Secret, the secret variables reference it: their values are nowhere in the pod
    monkeypatch.setenv("MECCANO_PLUGIN_POD_SECRET", "meccano-script-secrets")
    op = _started_operator(folder)
    pod = _pod_spec(script_pod_operator(op._pod_job, "run").build_pod_request_obj({}, dry_run=True))
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["MYSQL_PASSWORD"] == {"name": "MYSQL_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "meccano-script-secrets", "key": "MYSQL_PASSWORD"}}}
    assert IOTDB_PW not in json.dumps(pod)


def test_a_pod_task_requests_that_pod_from_the_api_and_fails_with_what_it_answered(
        tmp_path: Path, pod_env, run_plugin_dag, monkeypatch: pytest.MonkeyPatch, capfd):
    """Through a real DAG run: the task builds the pod, the provider sends it to the Kubernetes API (a recording
    stand-in that refuses it); the request is the restricted pod. With ``plugins.podSecret`` the IOTDB password is
    neither in the request nor in any log line (the provider logs a refused pod's whole spec: without a Secret the
    values would be in it, left to Airflow's masker of the task log)."""
    monkeypatch.setenv("MECCANO_PLUGIN_POD_SECRET", "meccano-script-secrets")
    with kube_api() as api:
        config = api.kubeconfig(tmp_path)
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(config), "in_cluster": False}}))
        write_plugin(tmp_path / "plugins", "podrun:1.0", "print('hi')\n")
        run = run_plugin_dag("podrun", tmp_path / "plugins")
        out = capfd.readouterr()
        log = out.out + out.err
        assert run.state == "failed"
        pods = api.created_pods()
    assert len(pods) == 1, log[-3000:]
    assert "Forbidden" in log or "403" in log, log[-3000:]
    _assert_restricted(pods[0], 60 * 60)  # the default time limit
    assert IOTDB_PW not in json.dumps(pods[0])
    assert {"name": "MYSQL_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "meccano-script-secrets",
                                                                     "key": "MYSQL_PASSWORD"}}} \
        in pods[0]["spec"]["containers"][0]["env"]
    assert pods[0]["metadata"]["labels"]["dag_id"] == "podrun"  # built with the run's real context
    assert IOTDB_PW not in log, log[max(0, log.find(IOTDB_PW) - 3000):log.find(IOTDB_PW) + 300]
    assert not [path for method, path, _ in api.requests if method == "POST" and "exec" in path]


def test_pod_isolation_without_its_image_fails_the_task_at_once_naming_the_setting(tmp_path: Path, pod_env,
                                                                                    run_plugin_dag, monkeypatch,
                                                                                    capfd):
    monkeypatch.setenv("MECCANO_PLUGIN_POD_IMAGE", "")
    write_plugin(tmp_path / "plugins", "noimage:1.0", "print('hi')\n")
    run = run_plugin_dag("noimage", tmp_path / "plugins")
    out = capfd.readouterr()
    log = out.out + out.err
    assert run.state == "failed"
    assert f"ScriptIsolationUnavailable: {SETTING} is 'pod', but plugins.podImage (MECCANO_PLUGIN_POD_IMAGE) is " \
           "empty" in log


def test_the_dag_factory_never_imports_the_kubernetes_provider(tmp_path: Path):
    """Parsing costs the same whatever the isolation: the provider's operator and the Kubernetes client are imported
    only when a pod task runs (Airflow's own provider discovery reads the provider's metadata module, whatever we
    do)."""
    heavy = ("kubernetes", "airflow.providers.cncf.kubernetes.operators", "airflow.providers.cncf.kubernetes.hooks",
             "airflow.providers.cncf.kubernetes.secret", "meccano.scripts.pod")
    probe = ("import sys; from meccano.plugins.factory import build_dags; build_dags(); "
             f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))")
    for mode in IsolationMode:
        env = {**os.environ, "MECCANO_PLUGIN_ISOLATION": mode, "MECCANO_PLUGIN_POD_IMAGE": "x"}
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "[]", (mode, done.stdout[-500:])


def test_the_pod_returns_the_exit_code_and_the_report(tmp_path: Path):
    """pod_entry.py, as the pod runs it (here as a plain process): the plugin folder copied into the run folder,
    the script supervised, its report and exit code written where the provider's sidecar reads them; the worker's
    side writes the report back beneath its run folder and refuses names that would leave it."""
    from meccano.scripts.pod import write_report

    folder = write_plugin(tmp_path / "image", "rep:1.0", "import os, sys\n"
                          "open(os.path.join(os.environ['MECCANO_REPORT_DIR'], 'output.png'), 'wb').write(b'PNG')\n"
                          "os.makedirs(os.path.join(os.environ['MECCANO_REPORT_DIR'], 'sub'))\n"
                          "open(os.path.join(os.environ['MECCANO_REPORT_DIR'], 'sub', 'data.csv'), 'w').write('a')\n"
                          "os.symlink('/etc/passwd', os.path.join(os.environ['MECCANO_REPORT_DIR'], 'link'))\n"
                          "print('done'); sys.exit(3)\n")
    run, xcom = tmp_path / "run", tmp_path / "xcom" / "return.json"
    run.mkdir()
    env = {"PATH": os.environ["PATH"], "MECCANO_PLUGIN_ORIGIN": str(folder), "MECCANO_POD_RUN_DIR": str(run),
           "MECCANO_POD_XCOM_FILE": str(xcom), "MECCANO_INTERPRETER": sys.executable,
           "MECCANO_PLUGIN_SOURCE": str(run / "rep:1.0" / "rep:1.0.py"), "MECCANO_REPORT_DIR": str(run / "report"),
           "HOME": str(run / "home"), "TMPDIR": str(run / "tmp"), "MECCANO_TIMEOUT_SECONDS": "60"}
    done = subprocess.run([sys.executable, "-I", str(ROOT / "include" / "meccano" / "scripts" / "pod_entry.py")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "done" in done.stdout and "left out of the report" in done.stdout, done
    result = json.loads(xcom.read_text())
    assert result["exit_code"] == 3 and sorted(result["files"]) == ["output.png", "sub/data.csv"]
    report = tmp_path / "worker-report"
    report.mkdir()
    assert write_report(result["files"], report) == []
    assert (report / "output.png").read_bytes() == b"PNG" and (report / "sub" / "data.csv").read_text() == "a"
    assert write_report({"../escape": "eA==", "/etc/x": "eA==", "a/../../b": "eA=="}, report) == [
        "../escape", "/etc/x", "a/../../b"]
    assert not (tmp_path / "escape").exists()


def test_a_pod_template_adds_its_volumes_under_the_restricted_pod(tmp_path: Path, pod_env, monkeypatch):
    """plugins.podTemplateFile (the guide's shared plugins volume) is merged under the pod: its volume and mount are
    added, the security context and the run folder stay ours."""
    import re

    import yaml

    from meccano.scripts.pod import script_pod_operator

    guide = (ROOT / "docs" / "kubernetes.md").read_text()
    block = next(yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", guide, flags=re.S)
                 if "script-pod-template" in b)
    data = yaml.safe_load(next(iter(block["extraConfigMaps"].values()))["data"])
    template = tmp_path / "pod-template.yaml"
    template.write_text(data["pod-template.yaml"])
    monkeypatch.setenv("MECCANO_PLUGIN_POD_TEMPLATE", str(template))
    folder = write_plugin(tmp_path / "plugins", "tpl:1.0", "print('hi')\n")
    op = _started_operator(folder)
    pod = _pod_spec(script_pod_operator(op._pod_job, "run").build_pod_request_obj({}, dry_run=True))
    _assert_restricted(pod, 3600)
    assert {"name": "plugins", "persistentVolumeClaim": {"claimName": "meccano-plugins", "readOnly": True}} \
        in pod["spec"]["volumes"]
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "plugins", "mountPath": "/opt/airflow/dags", "readOnly": True} in mounts
