"""factsPartitions: keep daily partitions of Facts ahead (logic: :mod:`meccano.iotdb.partition_ops`)."""

from meccano.iotdb.partition_ops import DEFAULT_AHEAD, FACTS, FACTS_DATE, keep_ahead, status, today_of_export


def entrypoint(context):
    ahead = context.params.get("ahead", DEFAULT_AHEAD)
    if not isinstance(ahead, int) or isinstance(ahead, bool) or not 1 <= ahead <= 366:
        raise ValueError(f"factsPartitions: parameter ahead={ahead!r} must be a whole number of days from 1 to 366 "
                         "(plugin.json parameters or dag_run.conf)")
    db = context.iotdb
    today = today_of_export(context.settings)
    done = keep_ahead(db, FACTS, FACTS_DATE, today, ahead, context.log)
    if done.skipped:
        context.log.info("nothing to do: %s", done.skipped)
        return 0
    context.log.info(status(db, FACTS, FACTS_DATE, today).text())
    return len(done.added)
