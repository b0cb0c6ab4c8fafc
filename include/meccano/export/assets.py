"""The Airflow Assets of the export: one per exported table, named from the real target.

``plugin.json`` ``outlets`` of the export hold a template: ``{export_target}`` is the target's root
URL (``s3://bucket/prefix`` or ``file:///folder``, see :func:`meccano.export.target.target_url`) and
``{table}`` expands the template once per table of ``export.tables`` (its prefix in the target), so the
DAG's last task updates ``s3://bucket/prefix/facts``, ``s3://bucket/prefix/devicehistorystatus``, ...
The older placeholders ``{bucket}`` and ``{remote_directory}`` are still understood.
Parse-time only: configuration, no database or network access.
"""

from __future__ import annotations

import re

from meccano.config import Settings
from meccano.export.options import table_specs
from meccano.export.target import target_url

_DOUBLE_SLASH = re.compile(r"(?<!:)/{2,}")


def outlet_uris(template: str, settings: Settings) -> list[str]:
    """The asset URIs of one ``outlets`` template (several when it names ``{table}``)."""
    values = {"export_target": target_url(settings), "bucket": settings.export.bucket or "meccano-export",
              "remote_directory": settings.export.remote_directory.strip("/")}
    if "{table}" not in template:
        return [_tidy(template.format(**values))]
    specs = table_specs(settings.section("export"), settings.export.days)
    return [_tidy(template.format(**values, table=spec.prefix)) for spec in specs]


def _tidy(uri: str) -> str:
    """No empty path segments (an empty remote directory), and no trailing slash."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    return f"{scheme}://{_DOUBLE_SLASH.sub('/', rest).rstrip('/')}"  # file:///abs keeps its three slashes
