"""S3 export and purge (the original ServiceManager's daily export), one task per step.

Thin on purpose: the logic lives in ``include/meccano/export`` (see docs/export.md). Each task takes
what it needs from XCom, the IOTDB's ledger and the target, so any task may run on any worker.
``dag_run.conf`` may set ``days``, ``tables`` and ``dry_run``.
"""

from meccano.export import assets, chain


def plan(context):
    from meccano.errors import ExportError
    from meccano.export.options import load_options

    try:
        load_options(context.settings, context.params)
    except ExportError as exc:  # a refused dag_run.conf: a retry cannot help, fail the run now
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    return chain.plan_step(context.settings, context.iotdb, context.params, context.run_id,
                           context.data_interval_end, context.log)


def export(context):
    """Write, upload and record the planned days; its local part files never outlive this task."""
    return chain.export_step(context.settings, context.iotdb, context.xcom_pull("plan"), context.log)


def verify(context):
    return chain.verify_step(context.settings, context.iotdb, context.xcom_pull("plan"), context.log)


def purge(context):
    """The last task: purge, then tell each table's Asset which days this run exported."""
    planned = context.xcom_pull("plan")
    result = chain.purge_step(context.settings, context.iotdb, planned, context.log)
    assets.describe_events(context.settings, planned, context.airflow_context.get("outlet_events"))
    return result
