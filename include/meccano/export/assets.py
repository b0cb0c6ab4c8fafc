"""The Airflow Assets of the export: one per exported table, named from the real target.

``plugin.json`` ``outlets`` of the export hold a template: ``{export_target}`` is the target's root
URL (``s3://bucket/prefix`` or ``file:///folder``, see :func:`meccano.export.location.target_url`) and
``{table}`` expands the template once per table of ``export.tables`` (its prefix in the target), so the
DAG's last task updates ``s3://bucket/prefix/facts``, ``s3://bucket/prefix/devicehistorystatus``, ...
The older placeholders ``{bucket}`` and ``{remote_directory}`` are still understood.
Parse-time only: configuration, no database or network access.
"""

from __future__ import annotations

import re
from typing import Any

from meccano.export.location import target_url
from meccano.export.options import table_specs
from meccano.settings.config import Settings

_DOUBLE_SLASH = re.compile(r"(?<!:)/{2,}")


def outlet_uris(template: str, settings: Settings) -> list[str]:
    """The asset URIs of one ``outlets`` template (several when it names ``{table}``)."""
    values = {"export_target": target_url(settings), "bucket": settings.export.bucket or "meccano-export",
              "remote_directory": settings.export.remote_directory.strip("/")}
    if "{table}" not in template:
        return [_tidy(template.format(**values))]
    specs = table_specs(settings)
    return [_tidy(template.format(**values, table=spec.prefix)) for spec in specs]


def _tidy(uri: str) -> str:
    """No empty path segments (an empty remote directory), and no trailing slash."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    return f"{scheme}://{_DOUBLE_SLASH.sub('/', rest).rstrip('/')}"  # file:///abs keeps its three slashes


def table_asset_uri(settings: Settings, prefix: str) -> str:
    """The asset URI of one table, as ``{export_target}/{table}`` expands to."""
    return _tidy(f"{target_url(settings)}/{prefix}")


def describe_events(settings: Settings, planned: dict[str, Any], outlet_events: Any) -> None:
    """Tell downstream DAGs what this run exported: each table's asset event carries the days (its
    ``extra``: ``{"table", "days", "runId", "purged"}``). ``outlet_events`` is Airflow's task context entry."""
    if outlet_events is None:
        return
    from airflow.sdk import Asset  # lazy: airflow.sdk costs 1143 ms at import (python -X importtime)

    options = planned.get("options", {})
    purging = bool(options.get("purge")) and not options.get("dry_run")
    for spec in table_specs(settings):
        days = [p["day"] for p in planned["partitions"] if p["table"] == spec.table]
        outlet_events[Asset(table_asset_uri(settings, spec.prefix))].extra = {
            "table": spec.table, "days": days, "runId": planned["run_id"], "purged": purging and bool(days)}
