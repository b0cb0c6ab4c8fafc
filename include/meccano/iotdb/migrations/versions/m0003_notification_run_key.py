"""Notification: dagId and runId columns, so a failure notice is found by its DAG and run exactly

A plugin's failed run finds the notice its failed task stored by these two columns (DAGs on the same
schedule share run ids; a match on the body text could take another DAG's notice for its own).
Rows stored before have NULL in both: they are not failure notices of a run still to be reported.
Idempotent: a column already there is left as it is. Nothing of the gateway is touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import inspect

revision = "0003_notification_run_key"
down_revision = "0002_drop_facts_stats_idx"

COLUMNS = ("dagId", "runId")


def _present() -> set[str]:
    return {c["name"] for c in inspect(op.get_bind()).get_columns("Notification")}


def upgrade() -> list[str]:
    have = _present()
    done = []
    for name in COLUMNS:
        if name in have:
            done.append(f"Notification.{name}: already there")
            continue
        op.add_column("Notification", sa.Column(name, sa.String(250), nullable=True))
        done.append(f"added column Notification.{name}")
    return done


def downgrade() -> list[str]:
    have = _present()
    gone = [name for name in COLUMNS if name in have]
    if gone:
        with op.batch_alter_table("Notification") as batch:  # SQLite: one table copy; MySQL: ALTER TABLE
            for name in gone:
                batch.drop_column(name)
    return [f"dropped column Notification.{name}" for name in gone]
