"""fleetStatusHistory: devices per status over time from DeviceHistoryStatus."""

from meccano.reports.builtin import fleet_status_history


def entrypoint(context):
    samples = fleet_status_history(context)
    context.log.info("charted %d status samples", samples)
    return samples
