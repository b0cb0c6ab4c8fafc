"""Meccano IoT ServiceManager on Airflow: all logic, importable without a scheduler."""
