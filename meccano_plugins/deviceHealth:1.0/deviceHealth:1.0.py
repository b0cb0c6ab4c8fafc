"""deviceHealth: the fleet report to the administrators (SNS topic AWS_TOPICARN).

Logic: :mod:`meccano.fleet.health`; its schedule is WARNINGLIMIT minutes
(``"scheduleFromConfig": "warninglimit"``).
"""

from meccano.fleet.health import send_health_report


def entrypoint(context):
    report = send_health_report(context.iotdb, context.settings)
    context.log.info("%s", report.subject)
    return report.counts
