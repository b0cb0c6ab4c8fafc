"""sensorStatisticsChart: latest average ± deviation per device sensor (DeviceStatistics)."""

from meccano.reports.builtin import sensor_statistics


def entrypoint(context):
    sensors = sensor_statistics(context)
    context.log.info("charted the statistics of %d device sensors", sensors)
    return sensors
