"""S3 export and purge (the original ServiceManager's daily export), one task per step.

Thin on purpose: the logic lives in ``include/meccano/export`` (see docs/export.md).
``dag_run.conf`` may set ``days``, ``tables`` and ``dry_run``.
"""

from meccano.export import chain


def plan(context):
    return chain.plan_step(context.settings, context.iotdb, context.params, context.run_id,
                           context.data_interval_end, context.log)


def export(context):
    return chain.export_step(context.settings, context.iotdb, context.xcom_pull("plan"), context.log)


def upload(context):
    return chain.upload_step(context.settings, context.iotdb, context.xcom_pull("plan"),
                             context.xcom_pull("export"), context.log)


def verify(context):
    return chain.verify_step(context.settings, context.iotdb, context.xcom_pull("plan"), context.log)


def purge(context):
    return chain.purge_step(context.settings, context.iotdb, context.xcom_pull("plan"), context.log)


def cleanup(context):
    return chain.cleanup_step(context.settings, context.xcom_pull("plan"), context.log)
