"""The operator of the script engines: a BashOperator whose command text is fixed and
whose environment is built when the task runs (never at parse time: it holds the IOTDB
credentials from the Airflow connection)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator

from meccano.engines import SCRIPT_COMMAND


class PluginScriptOperator(BashOperator):
    """Runs an R, python or nodejs plugin file with its interpreter."""

    template_fields = ()  # nothing of a plugin is ever rendered by Jinja

    def __init__(self, *, plugin_folder: str, **kwargs: Any) -> None:
        super().__init__(bash_command=SCRIPT_COMMAND, cwd=plugin_folder, append_env=True, **kwargs)
        self.plugin_folder = plugin_folder

    def get_env(self, context: Any) -> dict:
        from meccano.config import load_settings
        from meccano.engines import runtime_manifest, script_env

        self._manifest = runtime_manifest(self.plugin_folder)
        self._settings = load_settings()
        env = super().get_env(context)
        env.update(script_env(self._manifest, dict(context), self._settings))
        self._started = time.time()
        return env

    def execute(self, context: Any) -> Any:
        result = super().execute(context)
        from meccano.engines import publish_if_report, report_output_dir

        out = report_output_dir(self._manifest, str(context.get("run_id")))
        legacy = Path(self.plugin_folder) / "assets" / "output.png"
        # The original's report plugins wrote assets/output.png: pick it up when fresh.
        if legacy.is_file() and legacy.stat().st_mtime >= self._started - 1 and not (out / "output.png").exists():
            (out / "output.png").write_bytes(legacy.read_bytes())
        publish_if_report(self._manifest, out, self._settings)
        return result
