"""The web view: a FastAPI app mounted in Airflow's API server (see meccano.web.airflow_plugin)."""
