"""The Meccano page's banner: what plugin tasks need and is missing (:mod:`meccano.settings.prerequisites`).

The pool is read from the metadata database (:func:`meccano.web.airflow_internal.pool_slots`), the buckets
through the project's AWS connection; the answer is kept for :data:`TTL_SECONDS` so that a page load
does not ask S3 every time.
"""

from __future__ import annotations

import logging
import time
from threading import Lock

from meccano.iotdb.schema_migrations import iotdb_missing
from meccano.problems import Problem
from meccano.scripts.isolation import isolation_missing
from meccano.settings.config import Settings
from meccano.settings.plugins_folder import plugins_dir
from meccano.settings.prerequisites import missing, missing_prerequisites, s3_bucket_problem

log = logging.getLogger(__name__)

TTL_SECONDS = 30.0
_cache: dict[str, tuple[float, list[Problem]]] = {}
_lock = Lock()


def missing_now(settings: Settings, ttl: float = TTL_SECONDS) -> list[Problem]:
    """What is missing, at most ``ttl`` seconds old; a check that fails is itself shown as a problem."""

    key = f"{settings!r} {plugins_dir()}"
    with _lock:
        cached = _cache.get(key)
        if cached and time.monotonic() - cached[0] < ttl:
            return cached[1]
    # lazy: meccano.web.airflow_internal costs 126 ms at import (python -X importtime)
    from meccano.web.airflow_internal import pool_slots

    try:
        found = [*iotdb_missing(settings), *missing_prerequisites(settings, pool_slots, s3_bucket_problem),
                 *isolation_missing(settings)]
    except Exception as exc:  # noqa: BLE001 - the page answers whatever the check meets
        log.warning("Meccano page: the set-up check failed: %s", type(exc).__name__)
        found = [missing("set-up check", f"it could not run ({type(exc).__name__})", "python -m meccano db check")]
    with _lock:
        _cache[key] = (time.monotonic(), found)
    return found
