"""Every secret value the project knows of (connection passwords and keys, the console token): what a script's
output, a notification or an error is redacted of (:mod:`meccano.secrets.redaction`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from meccano.settings.config import Settings
from meccano.settings.connections import aws_if_configured

if TYPE_CHECKING:
    from airflow.sdk import Connection


def script_secrets(settings: Settings, iotdb: Connection | None, aws: Connection | None) -> list[str]:
    """Every secret value a script may print: connection passwords and keys, the console token."""
    values = [iotdb.password or "" if iotdb is not None else "", settings.mysql.password.get(),
              settings.aws.secret_access_key.get()]
    if aws is not None:
        values.append(aws.password or "")
        extra = aws.extra_dejson if isinstance(aws.extra_dejson, dict) else {}
        values += [str(extra.get(k) or "") for k in ("aws_secret_access_key", "aws_session_token")]
    values.append(settings.web.console_token.get())
    return [v for v in dict.fromkeys(values) if v]


def known_secrets(settings: Settings) -> list[str]:
    """Every secret value the project knows of, for redacting text that leaves a task (notifications, errors).

    The same list as a script's (:func:`script_secrets`), with the connections built best effort: a connection that
    cannot be built holds no secret to redact.
    """
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.settings.connections import iotdb_connection

    def built(make: Callable[[Settings], Connection | None]) -> Connection | None:
        try:
            return make(settings)
        except Exception:  # noqa: BLE001 - a connection that cannot be built is one fewer secret, not an error here
            return None

    return script_secrets(settings, built(iotdb_connection), built(aws_if_configured))


def mask_known_secrets(settings: Settings) -> int:
    """Hand every known secret (:func:`known_secrets`) and its encoded forms to Airflow's masker: called where a
    task, a notifier or the web view starts, so Airflow hides them in every log line and traceback there."""
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.secrets.redaction import mask_in_airflow

    return mask_in_airflow(known_secrets(settings))
