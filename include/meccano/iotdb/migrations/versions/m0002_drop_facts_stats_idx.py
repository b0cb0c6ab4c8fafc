"""drop Facts_stats_idx, the index earlier versions added to the gateway's Facts and nothing reads any more

Versions before a7d7b9a created ``Facts_stats_idx (device, sensor, creationDate, data)`` for
sensorStatistics' whole-window GROUP BY; since the hourly buckets (``DeviceStatisticsHour``) nothing
uses it, and every gateway insert and every export purge still pays for it. Later versions stopped
creating it but never dropped it (``ensure_schema`` never drops). This revision drops it when it is
there with exactly those columns: an index of that name with other columns is not the
ServiceManager's and is left alone. The gateway's own columns and indexes are not touched.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import inspect

revision = "0002_drop_facts_stats_idx"
down_revision = "0001_baseline"

# the one gateway-table object this revision may change (migrate.gateway_guard refuses anything else)
gateway_indexes = ("Facts_stats_idx",)
COLUMNS = ["device", "sensor", "creationDate", "data"]


def upgrade() -> list[str]:
    bind = op.get_bind()
    inspector = inspect(bind)
    if "Facts" not in inspector.get_table_names():
        return ["Facts_stats_idx: no Facts table, nothing to drop"]
    found = [i for i in inspector.get_indexes("Facts") if i["name"] == "Facts_stats_idx"]
    if not found:
        return ["Facts_stats_idx: not there, nothing to drop"]
    if list(found[0]["column_names"]) != COLUMNS:
        return [f"Facts_stats_idx on ({', '.join(map(str, found[0]['column_names']))}) is not the index the "
                "ServiceManager created: left as it is"]
    if bind.dialect.name == "mysql":  # wait at most 30 s behind a long transaction on Facts, not forever
        op.execute("SET SESSION lock_wait_timeout = 30")
    op.drop_index("Facts_stats_idx", table_name="Facts")
    return ["dropped index Facts_stats_idx on Facts"]


def downgrade() -> list[str]:
    return ["Facts_stats_idx is not re-created: it would sit on the gateway's Facts table and cost every insert, "
            "and no version from 0001_baseline on reads it"]
