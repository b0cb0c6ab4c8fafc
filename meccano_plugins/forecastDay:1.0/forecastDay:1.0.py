"""forecastDay: polynomial forecast of daily totals into Forecast_Day (logic: :mod:`meccano.fleet.forecast`)."""

from meccano.fleet.forecast import forecast_days


def entrypoint(context):
    run = forecast_days(context.iotdb, context.settings, params=context.params, log=context.log)
    context.log.info("forecast for %s: %d device/sensor series written, %d skipped",
                     run.today, len(run.forecasts), len(run.skipped))
    return {"forecasts": len(run.forecasts), "skipped": run.skipped[:50]}
