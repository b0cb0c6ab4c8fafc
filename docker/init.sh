#!/usr/bin/env bash
# One-shot set-up run by the airflow-init service (docker-compose.yaml). Every step is idempotent:
# re-run it with `docker compose run --rm airflow-init`. It prints each step; a failing step stops it
# with a non-zero exit, so nothing that depends on airflow-init starts.
set -euo pipefail

echo "meccano: Airflow metadata DB (airflow db migrate; includes the FAB auth manager's tables)"
airflow db migrate

echo "meccano: admin login '${AIRFLOW_ADMIN_USER}' (FAB auth manager, from .env)"
# `airflow users import` creates the user or updates its password and roles; the password goes through
# a private file, never a command line.
users_file=$(mktemp)
trap 'rm -f "$users_file"' EXIT
python - "$users_file" <<'PY'
import json
import os
import sys

user = {"username": os.environ["AIRFLOW_ADMIN_USER"], "email": os.environ.get("AIRFLOW_ADMIN_EMAIL", "admin@example.com"),
        "firstname": "Meccano", "lastname": "Admin", "roles": ["Admin"], "password": os.environ["AIRFLOW_ADMIN_PASSWORD"]}
with open(sys.argv[1], "w") as out:
    json.dump([user], out)
PY
airflow users import "$users_file" >/dev/null
rm -f "$users_file"

echo "meccano: IOTDB schema (python -m meccano db init)"
python -m meccano db init

echo "meccano: S3 buckets"
python - <<'PY'
import os

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from meccano.config import load_settings
from meccano.connections import aws_conn_id

# the effective settings (config.yml, MECCANO_ENV's section, then the environment: README, Configuration)
settings = load_settings()
hook = S3Hook(aws_conn_id=aws_conn_id(settings))  # the project's one AWS connection
wanted = {settings.export.bucket, os.environ.get("MECCANO_LOGS_BUCKET", "")}
if settings.reports_dir.startswith("s3://"):
    wanted.add(settings.reports_dir[5:].split("/", 1)[0])
for bucket in sorted(b for b in wanted if b):
    if hook.check_for_bucket(bucket):
        print(f"  bucket {bucket}: exists")
    else:
        hook.create_bucket(bucket_name=bucket)
        print(f"  bucket {bucket}: created")
PY
echo "meccano: Airflow pool 'iotdb' (MYSQL_CONNECTIONLIMIT slots)"
python -m meccano pool sync

echo "meccano: plugins"
python -m meccano plugins list || echo "meccano: some plugins are invalid (see above); they show as meccano_invalid_* DAGs"
