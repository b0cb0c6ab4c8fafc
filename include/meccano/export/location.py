"""Where exports go: the target's root URL (``s3://EXPORT_BUCKET/EXPORT_REMOTEDIRECTORY``, or the local folder of
the embedded demo) and the local folders under ``EXPORT_LOCALDIRECTORY``, with the checks that keep a local target
the worker's own and on one host. Read by the DAG's parse (asset URIs) without the S3 client libraries that
:mod:`meccano.export.target` (how a day's objects are put there) needs.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import ObjectStoragePath

from meccano.errors import StorageError, UnsafeFile
from meccano.files.private import own_folders
from meccano.settings.config import Settings
from meccano.settings.connections import aws_conn_id
from meccano.settings.hosts import airflow_home, splitting_executors

LOCAL_TARGET = "meccano-export"
DEFAULT_LOCAL_DIRECTORY = "meccano-exports"  # under $AIRFLOW_HOME, when export.localDirectory is empty
SHARED_TARGET_ENV = "EXPORT_LOCAL_TARGET_SHARED"


def local_directory(settings: Settings) -> Path:
    """``export.localDirectory``, else the worker's own ``$AIRFLOW_HOME/meccano-exports`` (never the shared
    ``/tmp``, where any local user could plant the target or the staging folder first); its symlinks resolved
    (the operator's), never those of the folders made below it."""
    configured = settings.export.local_directory.strip()
    return (Path(configured) if configured else airflow_home() / DEFAULT_LOCAL_DIRECTORY).resolve()


def target_url(settings: Settings) -> str:
    """The root URL of the export target (the rule in the module docstring)."""
    e = settings.export
    remote = e.remote_directory.strip("/")
    if e.bucket:
        base = e.bucket.rstrip("/") if "://" in e.bucket else f"s3://{e.bucket}"
    else:
        base = "file://" + str(local_directory(settings) / LOCAL_TARGET)
    return f"{base}/{remote}" if remote else base


def local_target_folder(settings: Settings) -> Path:
    """The local target's folder, created: ``meccano-export`` and each folder of ``remoteDirectory`` below the
    local directory must be this worker's real folders (a link or another user's folder planted there is refused
    with :class:`StorageError` naming it: the export would write where that user chose, or never run)."""
    parts = [LOCAL_TARGET, *(p for p in settings.export.remote_directory.strip("/").split("/") if p)]
    try:
        return own_folders(local_directory(settings), parts, "another local user may have planted it: remove it, or "
                           "set export.localDirectory (EXPORT_LOCALDIRECTORY) to a folder of the worker's own")
    except UnsafeFile as exc:
        raise StorageError(f"export target folder {exc}. Nothing was exported") from None


def target_root(settings: Settings) -> ObjectStoragePath:
    """The target as an :class:`ObjectStoragePath` (a local target's folder is created, and checked).

    Airflow keeps one filesystem per protocol and connection for the life of a process; every task runs
    in its own process, so a task always reads the connection as it is when the task starts.
    """
    url = target_url(settings)
    if url.startswith("file://"):
        local_target_folder(settings)
        return ObjectStoragePath(url)
    # Airflow keeps one filesystem per protocol and connection id in a process: a connection built
    # from the configuration has an id of its own per set of values (connections.aws_conn_id).
    return ObjectStoragePath(url, conn_id=aws_conn_id(settings))


def local_target_problem(settings: Settings) -> str | None:
    """Why a ``file://`` target would be split between hosts, or None. With an executor that runs tasks on
    other hosts, the export task would write a day to one worker's disk and verify would read another's."""
    url = target_url(settings)
    spread = splitting_executors(url, settings.export.local_target_shared)
    if not spread:
        return None
    return (f"the export target is the local folder {url[len('file://'):]} but Airflow's executor "
            f"({', '.join(spread)}) runs tasks on other hosts: the export task would write the days to one worker's "
            "disk and verify would look for them on another's. Set EXPORT_BUCKET (export.bucket) to an S3 bucket, "
            "or, if that folder is a volume every worker mounts, declare it with export.localTargetShared: true "
            f"({SHARED_TARGET_ENV}=true). Nothing was exported")
