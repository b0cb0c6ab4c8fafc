"""The operator of the script engines: a BashOperator whose command text is fixed and
whose environment is built when the task runs (never at parse time: it holds the IOTDB
credentials from the Airflow connection)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk.exceptions import AirflowException

from meccano.engines import SCRIPT_COMMAND
from meccano.script_mode import SQLITE_VARIABLE, remove_workdir, script_workdir, sqlite_problem


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
        if env.get(SQLITE_VARIABLE) and self._manifest.engine in ("R", "python"):
            problem = sqlite_problem(self._manifest.plugin, self._manifest.engine, self._manifest.source)
            if problem:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(problem)  # a retry cannot help
        # A read-only plugin folder (compose): run in a writable copy so assets/output.png still works.
        workdir, self._scratch = script_workdir(Path(self.plugin_folder))
        self.cwd = str(workdir)
        env["MECCANO_PLUGIN_SOURCE"] = str(workdir / self._manifest.source.name)
        env["MECCANO_PLUGIN_DIR"] = str(workdir)
        handle, self._tail_file = tempfile.mkstemp(prefix="meccano-tail-")
        os.close(handle)
        env["MECCANO_OUTPUT_TAIL"] = self._tail_file
        self._started = time.time()
        return env

    def execute(self, context: Any) -> Any:
        self._scratch, self._tail_file = None, ""
        try:
            return self._run(context)
        except AirflowException as exc:
            tail = _read_tail(self._tail_file)
            if tail:  # the script's last lines (already redacted) name what went wrong
                raise AirflowException(f"{exc}\nLast lines of the plugin's output:\n{tail}") from None
            raise
        finally:
            remove_workdir(self._scratch)
            if self._tail_file:
                Path(self._tail_file).unlink(missing_ok=True)
            self.cwd = self.plugin_folder

    def _run(self, context: Any) -> Any:
        result = super().execute(context)
        from meccano.engines import publish_if_report, report_output_dir

        out = report_output_dir(self._manifest, str(context.get("run_id")))
        legacy = Path(self.cwd or self.plugin_folder) / "assets" / "output.png"
        # The original's report plugins wrote assets/output.png: pick it up when fresh.
        if legacy.is_file() and legacy.stat().st_mtime >= self._started - 1 and not (out / "output.png").exists():
            (out / "output.png").write_bytes(legacy.read_bytes())
        publish_if_report(self._manifest, out, self._settings)
        return result


def _read_tail(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip() if path else ""
    except OSError:
        return ""
