"""Remove this run's local staging files (the target and the ledger keep everything needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

from meccano.config import Settings
from meccano.pathnames import safe_component

STAGING = "meccano-export-staging"


def staging_root(settings: Settings, run_id: str) -> Path:
    return Path(settings.export.local_directory or "/tmp").resolve() / STAGING / safe_component(run_id)


def partition_staging(settings: Settings, run_id: str, table: str, day: str) -> Path:
    return staging_root(settings, run_id) / table / day


def cleanup_run(settings: Settings, run_id: str) -> bool:
    root = staging_root(settings, run_id)
    existed = root.exists()
    shutil.rmtree(root, ignore_errors=True)
    return existed
