"""A small real Airflow HA cluster (PostgreSQL, two schedulers) for the failover test."""
