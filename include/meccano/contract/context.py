"""What a native plugin's ``entrypoint(context)`` receives."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.contract.manifest import PluginManifest
from meccano.contract.runconf import merged_parameters
from meccano.settings.config import Settings

if TYPE_CHECKING:
    from meccano.iotdb.db import Iotdb


@dataclass
class PluginContext:
    """What a native plugin's ``entrypoint(context)`` receives."""

    manifest: PluginManifest
    settings: Settings
    airflow_context: dict[str, Any] = field(repr=False)
    report_dir: Path

    @property
    def folder(self) -> Path:
        return self.manifest.folder

    @property
    def logical_date(self) -> Any:
        return self.airflow_context.get("logical_date")

    @property
    def data_interval_start(self) -> Any:
        return self.airflow_context.get("data_interval_start")

    @property
    def data_interval_end(self) -> Any:
        return self.airflow_context.get("data_interval_end")

    @property
    def run_id(self) -> str:
        return str(self.airflow_context.get("run_id") or "manual")

    @cached_property
    def params(self) -> dict[str, Any]:
        return merged_parameters(self.manifest, self.airflow_context)

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"meccano.plugin.{self.manifest.name}")

    @cached_property
    def iotdb(self) -> Iotdb:
        from meccano.iotdb.db import Iotdb  # lazy: meccano.iotdb.db costs 2 ms at import (python -X importtime)

        return Iotdb.from_settings(self.settings)

    def xcom_pull(self, task_id: str, key: str = "return_value") -> Any:
        """What an earlier task of this run returned (multi-task native plugins)."""
        ti = self.airflow_context.get("ti")
        return ti.xcom_pull(task_ids=task_id, key=key) if ti is not None else None

    def aws_connection(self) -> Any:
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.settings.connections import aws_connection

        return aws_connection(self.settings)

    def close(self) -> None:
        if "iotdb" in self.__dict__:
            self.__dict__["iotdb"].dispose()
