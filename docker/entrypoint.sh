#!/usr/bin/env bash
# The image's entrypoint, after Airflow's own image convention: `docker run IMAGE scheduler` runs
# `airflow scheduler`; `bash ...`, `python ...` or an absolute path run as given.
set -euo pipefail
# Any uid (compose's AIRFLOW_UID) may run this image; give it a home that it can write.
if ! whoami >/dev/null 2>&1; then
  export HOME=${AIRFLOW_USER_HOME_DIR:-/home/airflow}
fi
case "${1:-}" in
  bash|sh|python|python3|Rscript|node|/*) exec "$@" ;;
  airflow) shift; exec airflow "$@" ;;
  *) exec airflow "$@" ;;
esac
