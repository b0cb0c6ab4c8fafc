"""sensorStatistics: DeviceStatistics for the gateway's sigma filter (logic: :mod:`meccano.fleet.statistics`)."""

from meccano.fleet.statistics import update_statistics


def entrypoint(context):
    run = update_statistics(context.iotdb, context.settings, params=context.params)
    context.log.info("statistics over %s .. %s: %d hour(s) re-aggregated from Facts, %d device/sensor rows "
                     "written, %d kept (too few readings)", run.since, run.until, run.hours_aggregated,
                     run.written, run.skipped)
    return {"written": run.written, "skipped": run.skipped, "hoursAggregated": run.hours_aggregated}
