"""updatesByDevice: Facts rows per device over a window (logic in meccano.reports.builtin)."""

from meccano.reports.builtin import updates_by_device


def entrypoint(context):
    counts = updates_by_device(context)
    context.log.info("charted the updates of %d devices", len(counts))
    return len(counts)
