"""deviceAlert: raise/clear device alarms and notify once per change (logic: :mod:`meccano.fleet.alarms`)."""

from meccano.fleet.alarms import evaluate_alarms


def entrypoint(context):
    run = evaluate_alarms(context.iotdb, context.settings, params=context.params)
    context.log.info("alarms: %d raised, %d cleared, %d notification(s) published",
                     len(run.raised), len(run.cleared), len(run.published))
    return {"raised": len(run.raised), "cleared": len(run.cleared), "published": run.published}
