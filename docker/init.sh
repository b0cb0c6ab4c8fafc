#!/usr/bin/env bash
# One-shot set-up run by the airflow-init service (docker-compose.yaml). Every step is idempotent:
# re-run it with `docker compose run --rm airflow-init`. It prints each step; a failing step stops it
# with a non-zero exit, so nothing that depends on airflow-init starts.
set -euo pipefail

echo "meccano: Airflow metadata DB (airflow db migrate; includes the FAB auth manager's tables)"
airflow db migrate

echo "meccano: admin login '${AIRFLOW_ADMIN_USER}' (FAB auth manager, from .env)"
# Created once, its password reset to .env's on every run. The password reaches the command on its standard
# input (asked twice), never on a command line.
password_twice() { printf '%s\n%s\n' "$AIRFLOW_ADMIN_PASSWORD" "$AIRFLOW_ADMIN_PASSWORD"; }
if airflow users list -o plain 2>/dev/null | awk '{print $2}' | grep -qxF "$AIRFLOW_ADMIN_USER"; then
  password_twice | airflow users reset-password --username "$AIRFLOW_ADMIN_USER" 2>&1 | grep -v -i "password" || true
  echo "  user ${AIRFLOW_ADMIN_USER}: exists, password set from .env"
else
  password_twice | airflow users create --username "$AIRFLOW_ADMIN_USER" --email "${AIRFLOW_ADMIN_EMAIL:-admin@example.com}" \
    --firstname Meccano --lastname Admin --role Admin >/dev/null
  echo "  user ${AIRFLOW_ADMIN_USER}: created"
fi

echo "meccano: IOTDB schema, buckets (export, reports, remote task logs), the pool 'iotdb' (python -m meccano db upgrade)"
python -m meccano db upgrade

echo "meccano: plugins"
python -m meccano plugins list || echo "meccano: some plugins are invalid (see above); they show as meccano_invalid_* DAGs"
