#!/usr/bin/env bash
# One-shot set-up run by the airflow-init service after the image's entrypoint has
# migrated Airflow's metadata DB and created the admin user (_AIRFLOW_DB_MIGRATE,
# _AIRFLOW_WWW_USER_CREATE). Every step is idempotent: re-run it with
# `docker compose run --rm airflow-init`.
set -euo pipefail

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
