"""historyStatus: devices per status into DeviceHistoryStatus (logic: :mod:`meccano.fleet.history`)."""

from meccano.fleet.history import record_history


def entrypoint(context):
    counts = record_history(context.iotdb, context.settings)
    context.log.info("devices per status: %s", counts)
    return counts
