"""cleanMessages: delete delivered TRANSIENT and aged messages (logic: :mod:`meccano.fleet.messages`)."""

from meccano.fleet.messages import clean_messages


def entrypoint(context):
    run = clean_messages(context.iotdb, context.settings, params=context.params)
    context.log.info("deleted %d message(s) (delivered TRANSIENT, or created before %s)", run.deleted, run.cutoff)
    return run.deleted
