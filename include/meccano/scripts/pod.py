"""``plugins.isolation: pod``: each R, python or nodejs script runs in a Kubernetes pod of its own.

The pod is requested through the cncf.kubernetes provider's :class:`KubernetesPodOperator` (imported only here, only
when a script task runs in this mode: parsing DAGs never imports the provider). It holds:

* the workers' own image (``plugins.podImage``): the interpreters, the runner, the plugin folder, the plugin user;
* the uid and gid of the plugin user (``plugins.runAs``, as this worker's image knows it): ``runAsUser``,
  ``runAsGroup``, ``runAsNonRoot``; a restricted security context on every container (no privilege escalation,
  every capability dropped, ``seccompProfile: RuntimeDefault``, a read-only root filesystem) and no service
  account token; the run folder is an ``emptyDir``;
* only the script's environment (:func:`meccano.scripts.environment.build_script_env`: the IOTDB credentials and
  the run's values); with ``plugins.podSecret`` the secret ones reference that Kubernetes Secret instead of being
  written into the pod spec;
* the time limit: ``activeDeadlineSeconds`` backs up the runner's own deadline (and the task's
  ``execution_timeout``, whose ``on_kill`` deletes the pod);
* its log is relayed into the task's log by the provider, through Airflow's secret masker (the operator hands it
  every secret and its encoded forms before the pod starts).

The pod runs :mod:`meccano.scripts.pod_entry`, which returns the exit code and the report folder through the
provider's XCom sidecar; :class:`PodScriptHook` writes the report into the task's run folder on the worker, where
the operator publishes it as for a script run on the worker.
"""

from __future__ import annotations

import base64
import math
import pwd
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from airflow.providers.standard.hooks.subprocess import SubprocessHook, SubprocessResult
from airflow.sdk.exceptions import AirflowFailException

from meccano.scripts.modes import SQLITE_VARIABLE

POD_ENTRY = str(Path(__file__).with_name("pod_entry.py"))
POD_RUN_DIR = "/meccano-run"
RUN_VOLUME = "meccano-run"
# the script's secret variables: taken from plugins.podSecret (same key names) when it is set
SECRET_VARIABLES = ("MYSQL_PASSWORD", "AWS_SECRETACCESSKEY")
# what the worker's run folder means in the pod
WORKER_ONLY = ("MECCANO_RUN_AS", "MECCANO_RUN_DIR")
DEADLINE_MARGIN_SECONDS = 30
LABELS = {"app.kubernetes.io/part-of": "meccano", "app.kubernetes.io/component": "script-plugin"}


@dataclass(frozen=True)
class PodJob:
    """One script run as a pod: what :func:`script_pod_operator` needs, gathered when the task starts."""

    plugin: str
    plugin_folder: str  # in the image (the same path as on the worker)
    source_name: str
    env: Mapping[str, str]  # the script's environment as the worker built it (worker paths)
    timeout_seconds: float  # the runner's deadline
    grace_seconds: float
    image: str
    namespace: str
    secret_name: str
    template_file: str
    run_as: str


def pod_env(job: PodJob) -> dict[str, str]:
    """The script's environment with the run folder's paths of the pod, plus what :mod:`pod_entry` needs."""
    env = {k: v for k, v in job.env.items() if k not in WORKER_ONLY}
    workdir = f"{POD_RUN_DIR}/{Path(job.plugin_folder).name}"
    env.update({"MECCANO_PLUGIN_ORIGIN": job.plugin_folder, "MECCANO_POD_RUN_DIR": POD_RUN_DIR,
                "MECCANO_PLUGIN_DIR": workdir, "MECCANO_PLUGIN_SOURCE": f"{workdir}/{job.source_name}",
                "MECCANO_REPORT_DIR": f"{POD_RUN_DIR}/report", "HOME": f"{POD_RUN_DIR}/home",
                "TMPDIR": f"{POD_RUN_DIR}/tmp"})
    return env


def pod_name(plugin: str) -> str:
    """A DNS-1123 name for the plugin's pods (the provider adds a random suffix)."""
    name = re.sub(r"[^a-z0-9-]+", "-", plugin.lower()).strip("-")[:40].strip("-")
    return f"meccano-{name or 'script'}"


def restricted_container() -> Any:
    """The container security context of the restricted Pod Security Standard, with a read-only root."""
    from kubernetes.client import models as k8s  # lazy: kubernetes.client costs 308 ms at import (python -X importtime)

    return k8s.V1SecurityContext(allow_privilege_escalation=False, privileged=False, read_only_root_filesystem=True,
                                 run_as_non_root=True, capabilities=k8s.V1Capabilities(drop=["ALL"]),
                                 seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"))


def script_pod_operator(job: PodJob, task_id: str) -> Any:
    """The :class:`KubernetesPodOperator` that runs ``job`` (not attached to any DAG; run by :class:`PodScriptHook`)."""
    # lazy: airflow.providers.cncf.kubernetes.operators.pod costs 565 ms at import (python -X importtime)
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    # lazy: airflow.providers.cncf.kubernetes.secret costs 317 ms at import (python -X importtime)
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s  # lazy: kubernetes.client costs 308 ms at import (python -X importtime)

    user = pwd.getpwnam(job.run_as)  # the image's plugin user: the worker runs the same image
    env = pod_env(job)
    secrets = []
    if job.secret_name:
        for name in SECRET_VARIABLES:
            if env.pop(name, None) is not None:
                secrets.append(Secret("env", name, job.secret_name, name))
    return KubernetesPodOperator(
        task_id=task_id, name=pod_name(job.plugin), namespace=job.namespace or None, image=job.image,
        cmds=[env.get("MECCANO_PYTHON", "python3"), "-I", POD_ENTRY], env_vars=env, secrets=secrets,
        labels={**LABELS, "meccano/plugin": pod_name(job.plugin).removeprefix("meccano-")},
        security_context=k8s.V1PodSecurityContext(
            run_as_user=user.pw_uid, run_as_group=user.pw_gid, run_as_non_root=True, fs_group=user.pw_gid,
            supplemental_groups=[], seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")),
        container_security_context=restricted_container(),
        xcom_sidecar_container_security_context=restricted_container(),
        automount_service_account_token=False,
        volumes=[k8s.V1Volume(name=RUN_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource())],
        volume_mounts=[k8s.V1VolumeMount(name=RUN_VOLUME, mount_path=POD_RUN_DIR)],
        active_deadline_seconds=math.ceil(job.timeout_seconds + job.grace_seconds + DEADLINE_MARGIN_SECONDS),
        termination_grace_period=math.ceil(job.grace_seconds),
        pod_template_file=job.template_file or None,
        do_xcom_push=True, get_logs=True, on_finish_action="delete_pod", on_kill_action="delete_pod",
        reattach_on_restart=False, log_events_on_failure=True, log_pod_spec_on_failure=False, deferrable=False,
    )


def write_report(files: Mapping[str, str], report: Path) -> list[str]:
    """Write the pod's report files beneath ``report`` (relative, normal paths only); the names refused."""
    refused = []
    for name, data in files.items():
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or any(p in ("", ".", "..") for p in parts):
            refused.append(name)
            continue
        target = report.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data, validate=True))
    return refused


class PodScriptHook(SubprocessHook):
    """The operator's subprocess hook in pod mode: the fixed command is not run on the worker; the job runs as a
    pod (:func:`script_pod_operator`), and its result comes back as a :class:`SubprocessResult`."""

    def __init__(self, job: PodJob, context: Any, task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._job = job
        self._context = context
        self._task_id = task_id
        self._pod: Any = None

    def tail_text(self) -> str:
        return ""  # the pod's log is in the task's log already

    def run_command(self, command: Sequence[str], env: dict[str, str] | None = None, output_encoding: str = "utf-8",
                    cwd: str | None = None) -> SubprocessResult:
        if SQLITE_VARIABLE in self._job.env:
            raise AirflowFailException(
                f"{self._job.plugin}: the IOTDB is the embedded SQLite file ({SQLITE_VARIABLE}), which lives on the "
                "worker: a script pod cannot reach it. Use the gateway's MySQL/MariaDB IOTDB with "
                "plugins.isolation pod")
        report = Path((env or {})["MECCANO_REPORT_DIR"])
        self._pod = pod = script_pod_operator(self._job, self._task_id)
        self.log.info("Running the plugin script in a pod of image %s as uid %s", self._job.image, self._job.run_as)
        result = pod.execute(self._context)
        if not isinstance(result, dict) or not isinstance(result.get("exit_code"), int):
            raise AirflowFailException(f"{self._job.plugin}: the script pod returned no result (its log above says "
                                       "why)")
        refused = write_report(dict(result.get("files") or {}), report)
        if refused:
            self.log.warning("Report files with unusable names left out: %s", ", ".join(refused[:20]))
        self.log.info("Plugin script exited with return code %s", result["exit_code"])
        return SubprocessResult(exit_code=int(result["exit_code"]), output="")

    def send_sigterm(self) -> None:
        """BashOperator's ``on_kill``: the pod operator deletes its pod."""
        if self._pod is not None:
            self._pod.on_kill()
