"""Meccano ServiceManager: one DAG per plugin folder under ``meccano_plugins/``.

Thin on purpose: everything lives in ``include/meccano`` (see README, Architecture).
The word "airflow" and "dag" above let Airflow's safe-mode scan pick this file up.
"""

from airflow.sdk import get_parsing_context

from meccano.plugins.factory import build_dags  # the installed package (pyproject.toml, include/meccano)
from meccano.settings.plugins_folder import require_plugins_folder

# a missing or empty plugins folder (MECCANO_PLUGINS_DIR) is an import error of this file that names it
require_plugins_folder()
globals().update(build_dags(only_dag_id=get_parsing_context().dag_id))
