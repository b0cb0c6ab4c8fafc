"""Meccano ServiceManager: one DAG per plugin folder under ``meccano_plugins/``.

Thin on purpose: everything lives in ``include/meccano`` (see README, Architecture).
The word "airflow" and "dag" above let Airflow's safe-mode scan pick this file up.
"""

import sys
from pathlib import Path

_INCLUDE = str(Path(__file__).resolve().parents[1] / "include")
if _INCLUDE not in sys.path:
    sys.path.insert(0, _INCLUDE)

from airflow.sdk import get_parsing_context  # noqa: E402

from meccano.factory import build_dags  # noqa: E402

globals().update(build_dags(only_dag_id=get_parsing_context().dag_id))
