"""Example native plugin: the smallest useful shape of one.

``entrypoint(context)`` gets a :class:`meccano.contract.context.PluginContext`: the run's dates,
the plugin folder, settings, and ``context.iotdb`` (the IOTDB through the Airflow
connection). Queries use ``:name`` parameters and run on MySQL and SQLite alike.
"""

from sqlalchemy import text


def entrypoint(context):
    db = context.iotdb
    rows = db.query("SELECT device_group, COUNT(*) AS devices FROM Registration GROUP BY device_group")
    run_at = context.logical_date.isoformat() if context.logical_date else context.run_id
    with db.begin() as con:
        for row in rows:
            con.execute(text("INSERT INTO ExampleOutput (plugin, device_group, devices, runAt) "
                             "VALUES (:plugin, :grp, :devices, :run_at)"),
                        {"plugin": context.manifest.plugin, "grp": row["device_group"],
                         "devices": row["devices"], "run_at": run_at})
    context.log.info("counted %d device groups", len(rows))
    return len(rows)
