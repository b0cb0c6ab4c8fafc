"""The ground floor of secrets: recognising and removing secret values from text and streams (no settings, no
Airflow at import)."""
