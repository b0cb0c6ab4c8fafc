"""What plugin tasks need before they can run, created by every set-up path and named when missing.

Airflow leaves a task whose pool does not exist in ``scheduled`` with one scheduler log line, and a
missing bucket fails the export at its first write. So:

* :func:`create_prerequisites` makes them (the buckets of the S3 targets and of Airflow's remote task
  logs, the ``iotdb`` pool): run by ``python -m meccano db init`` / ``db upgrade``, the demo and compose's
  ``airflow-init``; the OS user script plugins run as (``plugins.runAs``) is the system's, made by
  ``scripts/plugin-user.sh`` and the image, and only named here when missing;
* :func:`missing_prerequisites` names what is still missing and the command that creates it: shown by
  ``python -m meccano db check`` and ``config show`` (both exit non-zero) and at the top of the Meccano
  page in the Airflow UI.

How the pool and a bucket are looked up is passed in: the command line asks Airflow's own CLI
(:func:`cli_pool_slots`), the web view reads the metadata database it already has a session on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from meccano.problems import Problem
from meccano.settings.config import Settings
from meccano.settings.connections import aws_conn_id
from meccano.settings.plugins_folder import FOLDER_FIX, folder_problem
from meccano.settings.pool import IOTDB_POOL, sync_pool

SETUP_COMMAND = "python -m meccano db upgrade"

PoolSlots = Callable[[str], int | None]  # pool name -> its slots; None: it does not exist
BucketProblem = Callable[[str, str], str | None]  # (bucket, connection id) -> None when usable, else why not


MISSING = "MISSING"  # the label of a missing prerequisite's line: ``MISSING what: why. Fix: command``


def missing(what: str, why: str, fix: str) -> Problem:
    """One missing prerequisite: what (``where``), what it breaks (``message``), and the command that creates it."""
    return Problem(what, why, fix, label=MISSING)


def _bucket_name(location: str) -> str:
    """The bucket of ``s3://[KEY:SECRET@]bucket/prefix`` (or of ``bucket/prefix``): never the credentials a URL
    may carry before the ``@``."""
    return location.removeprefix("s3://").split("/", 1)[0].rpartition("@")[2]


def required_buckets(settings: Settings) -> list[str]:
    """The S3 buckets the configuration writes to: the export target's and the report store's."""
    wanted = []
    bucket = settings.export.bucket
    if bucket and ("://" not in bucket or bucket.startswith("s3://")):
        wanted.append(_bucket_name(bucket))
    if settings.reports_dir.startswith("s3://"):
        wanted.append(_bucket_name(settings.reports_dir))
    return sorted({b for b in wanted if b})


def remote_log_bucket() -> tuple[str, str] | None:
    """(bucket, connection id) of Airflow's remote task logs when they go to S3 (``[logging] remote_logging``
    with an ``s3://`` ``remote_base_log_folder``): without the bucket no task log is kept, so it is a
    prerequisite like the export's."""
    from airflow.sdk import conf  # lazy: airflow.sdk costs 1056 ms at import (python -X importtime)

    if not conf.getboolean("logging", "remote_logging", fallback=False):
        return None
    folder = conf.get("logging", "remote_base_log_folder", fallback="") or ""
    bucket = folder[len("s3://"):].split("/", 1)[0] if folder.startswith("s3://") else ""
    return (bucket, conf.get("logging", "remote_log_conn_id", fallback="") or "aws_default") if bucket else None


def wanted_buckets(settings: Settings) -> list[tuple[str, str]]:
    """Every bucket a run writes to, with the connection that reaches it: the configuration's, then the logs'."""

    conn_id = aws_conn_id(settings)
    wanted = [(bucket, conn_id) for bucket in required_buckets(settings)]
    logs = remote_log_bucket()
    if logs and logs[0] not in {bucket for bucket, _ in wanted}:
        wanted.append(logs)
    return wanted


def missing_prerequisites(settings: Settings, pool_slots: PoolSlots, bucket_problem: BucketProblem) -> list[Problem]:
    """Everything plugin tasks need that is not there (empty: all set)."""
    found: list[Problem] = plugins_folder_missing()
    limit = settings.mysql.connection_limit
    try:
        slots = pool_slots(IOTDB_POOL)
    except Exception as exc:  # noqa: BLE001 - the check must say why it could not look, not crash
        found.append(missing(f"pool {IOTDB_POOL!r}", f"Airflow's metadata database could not be asked ({exc})",
                             "run `airflow db migrate`, then " + SETUP_COMMAND))
        slots = limit
    if slots is None:
        found.append(missing(f"pool {IOTDB_POOL!r}", "every plugin task takes a slot of it; without it Airflow "
                             "leaves the tasks in 'scheduled' forever",
                             f"{SETUP_COMMAND} (or python -m meccano pool sync)"))
    elif slots != limit:
        found.append(missing(f"pool {IOTDB_POOL!r} with {limit} slots",
                             f"it has {slots} slots, mysql.connectionLimit (MYSQL_CONNECTIONLIMIT) says {limit}",
                             "python -m meccano pool sync"))
    for bucket, conn_id in wanted_buckets(settings):
        why = bucket_problem(bucket, conn_id)
        if why:
            found.append(missing(f"bucket {bucket!r}", why, f"{SETUP_COMMAND} (creates it) or fix export.bucket / "
                                 "reports.directory / [logging] remote_base_log_folder and the AWS connection"))
    return found


def plugins_folder_missing() -> list[Problem]:
    """The plugins folder (``MECCANO_PLUGINS_DIR``), when it is missing or holds no plugin."""

    problem = folder_problem()
    if problem is None:
        return []
    return [missing(f"plugins folder {problem[0]}", f"it {problem[1]}; without a plugin folder there is no "
                    "Meccano DAG", FOLDER_FIX)]




def cli_pool_slots(name: str) -> int | None:
    """The pool's slots through Airflow's public CLI (``airflow pools get -o json``); None when it does not
    exist. Raises :class:`RuntimeError` with Airflow's own message when the CLI fails otherwise."""
    done = subprocess.run([sys.executable, "-m", "airflow", "pools", "get", name, "-o", "json"],
                          capture_output=True, text=True, timeout=180)
    if done.returncode:
        if "does not exist" in (done.stderr + done.stdout):
            return None
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines() or ["no output"]
        cause = next((line for line in reversed(lines) if "Error" in line), lines[-1])  # the exception, not a URL
        raise RuntimeError(f"`airflow pools get` failed: {cause.strip()[:300]}")
    rows = _json_rows(done.stdout)
    return int(rows[0]["slots"]) if rows else None


def _json_rows(output: str) -> list[dict[str, Any]]:
    """The JSON list an ``airflow ... -o json`` command prints; Airflow 3.2 prints its log lines on standard
    output before it (a line starting with a time stamp), so the list starts at the first line opening with '['."""
    lines = output.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), None)
    if start is None:
        return []
    rows, _ = json.JSONDecoder().raw_decode("".join(lines[start:]).lstrip())
    return list(rows)


def s3_bucket_problem(bucket: str, conn_id: str) -> str | None:
    """Why ``bucket`` is not usable through the AWS connection ``conn_id`` (``head_bucket``); None when it is."""
    # lazy: airflow.providers.amazon.aws.hooks.s3 costs 1155 ms at import (python -X importtime)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    # lazy: botocore.exceptions costs 1.2 ms at import (python -X importtime)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        S3Hook(aws_conn_id=conn_id).get_conn().head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            return "it does not exist; the export, the report store or the task logs write to it"
        if code in ("403", "AccessDenied", "Forbidden"):
            return f"the AWS connection {conn_id!r} may not use it (access denied)"
        return f"S3 answered {code or 'an error'}"
    except BotoCoreError as exc:
        return f"S3 cannot be reached through the AWS connection {conn_id!r} ({type(exc).__name__})"
    return None


def create_prerequisites(settings: Settings, say: Callable[[str], None]) -> None:
    """Create what is missing, saying each step: the buckets, then the pool (``airflow pools set``)."""
    buckets = wanted_buckets(settings)
    if buckets:
        # lazy: airflow.providers.amazon.aws.hooks.s3 costs 1155 ms at import (python -X importtime)
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        for index, (bucket, conn_id) in enumerate(buckets, 1):
            hook = S3Hook(aws_conn_id=conn_id)
            if hook.check_for_bucket(bucket):
                say(f"bucket {bucket} ({index} of {len(buckets)}): exists")
            else:
                hook.create_bucket(bucket_name=bucket)
                say(f"bucket {bucket} ({index} of {len(buckets)}): created")
    say(f"pool {IOTDB_POOL!r}: setting {settings.mysql.connection_limit} slots (airflow pools set) ...")
    sync_pool(settings)
    say(f"pool {IOTDB_POOL!r}: {settings.mysql.connection_limit} slots (mysql.connectionLimit)")


def plan_prerequisites(settings: Settings, pool_slots: PoolSlots = cli_pool_slots,
                       bucket_problem: BucketProblem = s3_bucket_problem) -> list[str]:
    """What :func:`create_prerequisites` would do, each as a line; nothing is created or changed."""
    lines = []
    buckets = wanted_buckets(settings)
    for index, (bucket, conn_id) in enumerate(buckets, 1):
        why = bucket_problem(bucket, conn_id)
        verb = "would be created" if why and "does not exist" in why else f"stays as it is ({why})" if why else "exists"
        lines.append(f"bucket {bucket} ({index} of {len(buckets)}): {verb}")
    lines.append(pool_plan_line(settings, pool_slots))
    return lines


def pool_plan_line(settings: Settings, pool_slots: PoolSlots = cli_pool_slots) -> str:
    """What ``pool sync`` would do to the pool ``iotdb`` (read through Airflow's CLI; nothing set)."""
    want = settings.mysql.connection_limit
    slots = pool_slots(IOTDB_POOL)
    now = "it does not exist" if slots is None else f"it has {slots}"
    verb = "stays at" if slots == want else "would be set to"
    return f"pool {IOTDB_POOL!r}: {verb} {want} slots (mysql.connectionLimit; {now})"
