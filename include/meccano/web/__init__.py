"""The web view: a FastAPI app mounted in Airflow's API server (see plugins/meccano_web.py)."""
