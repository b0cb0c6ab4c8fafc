"""Administrators hear about a failing plugin: one notification per failed DAG run.

Two halves, both Airflow's public callback interfaces:

* :class:`RecordFailure` is each plugin task's ``on_failure_callback``. Airflow calls it only
  when the task has failed for good (after its last retry; a retry that later succeeds
  never calls it). It stores the notification with the last lines of the error, secrets
  redacted, in the IOTDB's ``Notification`` outbox, where any host can read it.
* :class:`PluginFailureNotifier` (an ``airflow.sdk.BaseNotifier``) is the DAG's
  ``on_failure_callback``: Airflow calls it once when the run fails. It names the plugin,
  the run, the failed task, the last lines of its error and a link to the run, and goes
  through the project's notification outbox (:class:`meccano.fleet.notify.Notifier`): stored in
  ``Notification``, published to the administrators' SNS topic (``AWS_TOPICARN``) over the
  project's AWS connection, or only logged and stored when no topic is configured.

On by default; ``"notifyOnFailure": false`` in a plugin's ``plugin.json`` turns it off.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseNotifier, conf

from meccano.errors import ConfigError, NotificationError
from meccano.secrets.redaction import mask_in_airflow, redact_text

log = logging.getLogger("meccano.failure")

KIND = "plugin_failure"
TAIL_LINES = 15
TAIL_CHARS = 4000


def _known_secrets() -> list[str]:
    """Every configured secret (:func:`meccano.settings.secrets.known_secrets`), best effort; handed to
    Airflow's masker as well."""
    try:
        # lazy: meccano.settings.config costs 3 ms at import (python -X importtime)
        from meccano.settings.config import load_settings

        # lazy: meccano.settings.secrets costs 17 ms at import (python -X importtime)
        from meccano.settings.secrets import known_secrets

        secrets = known_secrets(load_settings())
        mask_in_airflow(secrets)  # whatever the callback logs or raises is masked by Airflow too
        return secrets
    except Exception as exc:  # the notification still goes out, redacted by the secret-looking patterns only
        log.warning("failure notification: the configured secrets could not be read (%s); only values that look "
                    "like secrets are redacted", type(exc).__name__)
        return []


def error_tail(exc: BaseException | None) -> str:
    """The last lines of a task's error, secrets redacted."""
    if exc is None:
        return ""
    lines = "".join(traceback.format_exception_only(type(exc), exc)).rstrip().splitlines()
    tail = "\n".join(lines[-TAIL_LINES:])[-TAIL_CHARS:]
    return redact_text(tail, _known_secrets())


def run_link(dag_id: str, run_id: str) -> str:
    """The run in the Airflow UI (``[api] base_url``)."""
    base = ""
    try:

        base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:
        pass
    return f"{base or 'http://localhost:8080'}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def compose(plugin: str, dag_id: str, run_id: str, task_id: str | None, tail: str, reason: str = "") -> tuple[str, str]:
    """(subject, body) of the notification about one failed run."""
    subject = f"Meccano plugin {plugin} failed: run {run_id}"
    body = "\n".join([
        f"The plugin {plugin} (DAG {dag_id}) failed after its retries.",
        f"Run: {run_id}",
        f"Failed task: {task_id or 'unknown'}",
        *([f"Reason: {reason}"] if reason else []),
        f"Run in Airflow: {run_link(dag_id, run_id)}",
        "",
        "Last lines of the error:",
        tail or "(not recorded: see the task's log through the link above)",
        "",
        f"To stop these messages for this plugin set \"notifyOnFailure\": false in {plugin}/plugin.json.",
    ])
    return subject, body


def plugin_of(context: Any) -> str:
    """``name:version`` of the plugin a callback is about (the DAG's id and its ``version:`` tag)."""
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or "?"
    version = next((str(t).split(":", 1)[1] for t in (getattr(dag, "tags", None) or ())
                    if str(t).startswith("version:")), "")
    return f"{dag_id}:{version}" if version else dag_id


class RecordFailure:
    """Task ``on_failure_callback``: the failed task's notification, with its error, into the outbox.

    Airflow calls it on the task's host after the last retry, where the exception is at
    hand; the row (PENDING, or LOGGED when no topic is set) waits in ``Notification`` for
    the run's :class:`PluginFailureNotifier`, which any host can publish from. One
    instance serves every DAG (the plugin comes from the context): nothing per DAG to build
    at parse time.
    """

    def __call__(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        dag_id, run_id = getattr(ti, "dag_id", "?"), str(getattr(ti, "run_id", context.get("run_id", "?")))
        subject, body = compose(plugin_of(context), dag_id, run_id, getattr(ti, "task_id", None),
                                error_tail(context.get("exception")))
        try:
            with _outbox() as (db, notifier), db.begin() as con:
                notifier.queue(con, KIND, subject, redact_text(body, _known_secrets()), (str(dag_id), run_id))
        except Exception as exc:  # the run's notifier still sends, without the error's lines
            log.warning("could not store the failure notification of %s: %s", dag_id, type(exc).__name__)


class PluginFailureNotifier(BaseNotifier):
    """DAG ``on_failure_callback`` of a plugin DAG: tells the administrators once per failed run.

    One instance serves every DAG (the plugin comes from the context).
    """

    template_fields = ()

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (no template fields; the message is never a template a plugin could inject into)."""

    def notify(self, context: Any) -> None:
        dag = context.get("dag")
        ti = context.get("ti") or context.get("task_instance")
        dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "?")
        run_id = str(context.get("run_id") or getattr(ti, "run_id", "?"))
        try:
            with _outbox() as (_, notifier):
                if notifier.stored_for(KIND, (str(dag_id), run_id)):
                    notifier.flush(KIND)  # the failed task's message (its error included), once
                    return
        except Exception as exc:

            if isinstance(exc, NotificationError):
                raise
            log.warning("cannot read the notification outbox (%s)", type(exc).__name__)
        task_id = getattr(ti, "task_id", None)
        subject, body = compose(plugin_of(context), str(dag_id), run_id, task_id, "",
                                str(context.get("reason") or ""))
        deliver(subject, redact_text(body, _known_secrets()), (str(dag_id), run_id))


@contextmanager
def _outbox() -> Iterator[tuple[Any, Any]]:
    from meccano.fleet.notify import Notifier  # lazy: meccano.fleet.notify costs 22 ms at import (python -X importtime)
    from meccano.iotdb.db import Iotdb  # lazy: meccano.iotdb.db costs 19 ms at import (python -X importtime)

    settings = _settings()
    db = Iotdb.from_settings(settings)
    try:
        yield db, Notifier(db, settings)
    finally:
        db.dispose()


def _settings() -> Any:
    # lazy: meccano.settings.config costs 3 ms at import (python -X importtime)
    from meccano.settings.config import Settings, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        log.error("invalid configuration (%s); notifying with defaults", exc)
        return Settings()


def deliver(subject: str, body: str, run: tuple[str, str] | None = None) -> None:
    """Through the outbox (stored, then SNS or log); straight to SNS when the IOTDB is unreachable."""
    settings = _settings()
    try:
        with _outbox() as (_, notifier):
            notifier.send(KIND, subject, body, run)
        return
    except Exception as exc:

        if isinstance(exc, NotificationError):
            raise
        log.warning("cannot store the failure notification in the IOTDB (%s); sending it directly",
                    type(exc).__name__)
    if not settings.aws.topic_arn:
        log.warning("no SNS topic configured (aws.topicArn / AWS_TOPICARN): %s\n%s", subject, body)
        return
    # lazy: meccano.fleet.notify costs 22 ms at import (python -X importtime)
    from meccano.fleet.notify import clean_body, clean_subject, settings_sns_hook

    settings_sns_hook(settings).publish_to_target(target_arn=settings.aws.topic_arn, message=clean_body(body),
                                                  subject=clean_subject(subject))


_SHARED: dict[str, Any] = {}


def callbacks() -> tuple[RecordFailure, list[Callable[[Any], None]]]:
    """(the task ``on_failure_callback``, the DAG ``on_failure_callback``), built once per process.

    A notifier is a callable over the context (Airflow's notifier interface), typed as such here."""
    if not _SHARED:
        _SHARED["task"], _SHARED["dag"] = RecordFailure(), [PluginFailureNotifier()]
    return _SHARED["task"], _SHARED["dag"]
