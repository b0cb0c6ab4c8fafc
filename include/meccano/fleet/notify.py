"""Notifications to the administrators: Amazon SNS through the amazon provider's
``SnsHook``, with an outbox in the ``Notification`` table.

Every notification is first stored in ``Notification`` (in the caller's transaction
when it goes with a state change, e.g. an alarm), then published. ``delivered``:

* ``0`` PENDING   stored, not yet published (a failed publish leaves it here)
* ``1`` SENT      published; ``messageId`` is SNS's id
* ``2`` LOGGED    no topic configured (the demo): written to the task log and kept
                  here, nothing fails
* ``3`` FAILED    a one-shot message (the health report) whose publish failed; its
                  retry builds a fresh report instead of sending a stale one

A publish failure raises :class:`NotificationError`, so the task fails and Airflow
retries it; :meth:`Notifier.flush` of the retry sends what is still PENDING. State
changes and their notification are committed together, so none is ever lost, and a
notification is marked SENT right after SNS accepts it (at-least-once delivery).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from meccano.errors import NotificationError
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings
from meccano.settings.connections import aws_conn_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as SAConnection

log = logging.getLogger(__name__)

PENDING, SENT, LOGGED, FAILED = 0, 1, 2, 3
SUBJECT_LIMIT = 100  # SNS: ASCII, no line breaks, at most 100 characters
BODY_LIMIT = 250_000  # SNS: 256 KB per message
RunKey = tuple[str, str]  # (DAG id, run id): DAGs on one schedule share run ids, so both name a run



def settings_sns_hook(settings: Settings) -> Any:
    """The SNS hook over the project's one AWS connection (:func:`meccano.settings.connections.aws_conn_id`)."""
    # lazy: airflow.providers.amazon.aws.hooks.sns costs 1077 ms at import (python -X importtime)
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

    return SnsHook(aws_conn_id=aws_conn_id(settings))


def clean_subject(subject: str) -> str:
    ascii_only = subject.encode("ascii", "replace").decode("ascii")
    one_line = " ".join(ascii_only.split())
    return one_line if len(one_line) <= SUBJECT_LIMIT else one_line[: SUBJECT_LIMIT - 3] + "..."


def clean_body(body: str) -> str:
    data = body.encode("utf-8")
    if len(data) <= BODY_LIMIT:
        return body
    return data[:BODY_LIMIT].decode("utf-8", "ignore") + "\n... (truncated: SNS limits a message to 256 KB)"


@dataclass(frozen=True)
class Stored:
    id: int
    kind: str
    subject: str
    body: str
    topic: str | None


class Notifier:
    """Stores notifications and publishes them to ``settings.aws.topic_arn``."""

    def __init__(self, db: Iotdb, settings: Settings, hook: Any = None) -> None:
        self.db = db
        self.settings = settings
        self.topic = settings.aws.topic_arn or None
        self._hook = hook

    def __repr__(self) -> str:
        return f"Notifier(topic={self.topic!r}, db={self.db!r})"

    @property
    def hook(self) -> Any:
        if self._hook is None:
            self._hook = settings_sns_hook(self.settings)
        return self._hook

    def queue(self, con: SAConnection, kind: str, subject: str, body: str, run: RunKey | None = None) -> int:
        """Store a notification inside the caller's transaction; returns its ID. ``run``: the DAG run it is
        about, stored in its own columns so it is found by exactly that DAG and run (:meth:`stored_for`)."""
        subject, body = clean_subject(subject), clean_body(body)
        state = PENDING if self.topic else LOGGED
        dag_id, run_id = run or (None, None)
        result = con.execute(text("INSERT INTO Notification (kind, subject, body, topic, delivered, dagId, runId) "
                                  "VALUES (:kind, :subject, :body, :topic, :state, :dag, :run)"),
                             {"kind": kind, "subject": subject, "body": body, "topic": self.topic, "state": state,
                              "dag": dag_id, "run": run_id})
        if state == LOGGED:
            log.warning("no SNS topic configured (aws.topicArn / AWS_TOPICARN): notification stored, not sent\n"
                        "Subject: %s\n%s", subject, body)
        return int(result.lastrowid)

    def stored_for(self, kind: str, run: RunKey) -> int:
        """How many notifications of ``kind`` about exactly this DAG run are stored (in any state)."""
        return int(self.db.scalar("SELECT COUNT(*) FROM Notification WHERE kind = :k AND dagId = :d AND runId = :r",
                                  k=kind, d=run[0], r=run[1]) or 0)

    def pending(self, kind: str, only_id: int | None = None) -> list[Stored]:
        sql = "SELECT ID, kind, subject, body, topic FROM Notification WHERE kind = :kind AND delivered = :pending"
        params: dict[str, Any] = {"kind": kind, "pending": PENDING}
        if only_id is not None:
            sql += " AND ID = :id"
            params["id"] = only_id
        rows = self.db.query(sql + " ORDER BY ID", **params)
        return [Stored(int(r["ID"]), r["kind"], r["subject"], r["body"], r["topic"]) for r in rows]

    def _publish(self, item: Stored) -> str:
        try:
            response = self.hook.publish_to_target(target_arn=item.topic, message=item.body, subject=item.subject)
        except Exception as exc:
            # The exception text of botocore names the endpoint and the error code, never credentials.
            raise NotificationError(f"publishing notification {item.id} ({item.kind}) to {item.topic} failed: "
                                    f"{type(exc).__name__}: {exc}; it stays pending and the retry re-sends it"
                                    ) from exc
        message_id = str(response.get("MessageId", ""))
        self.db.execute("UPDATE Notification SET delivered = :sent, messageId = :mid WHERE ID = :id",
                        sent=SENT, mid=message_id[:100], id=item.id)
        log.info("notification %d published to %s (MessageId %s): %s", item.id, item.topic, message_id,
                 item.subject)
        return message_id

    def flush(self, kind: str) -> list[int]:
        """Publish every PENDING notification of ``kind``, oldest first; raises on the first failure."""
        sent = []
        for item in self.pending(kind):
            self._publish(item)
            sent.append(item.id)
        return sent

    def send(self, kind: str, subject: str, body: str, run: RunKey | None = None) -> int:
        """Store and publish one notification now; a failure marks it FAILED and raises."""
        with self.db.begin() as con:
            nid = self.queue(con, kind, subject, body, run)
        for item in self.pending(kind, only_id=nid):
            try:
                self._publish(item)
            except NotificationError:
                self.db.execute("UPDATE Notification SET delivered = :failed WHERE ID = :id", failed=FAILED, id=nid)
                raise
        return nid
