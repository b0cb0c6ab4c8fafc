#!/usr/bin/env bash
# The image's entrypoint, after Airflow's own image convention: `docker run IMAGE scheduler` runs
# `airflow scheduler`; `bash ...`, `python ...` or an absolute path run as given.
set -euo pipefail
# Any uid (compose's AIRFLOW_UID) may run this image; give it a home that it can write.
if ! whoami >/dev/null 2>&1; then
  export HOME=${AIRFLOW_USER_HOME_DIR:-/home/airflow}
fi
# What Airflow and the product create (logs, caches, the run folders before they are handed over) is the
# worker's alone: script plugins run as another local user (docs/security.md). Group bits stay for gid 0,
# Airflow's arbitrary-uid convention; the plugin user is not in that group.
umask 0007
case "${1:-}" in
  bash|sh|python|python3|Rscript|node|/*) exec "$@" ;;
  airflow) shift; exec airflow "$@" ;;
  *) exec airflow "$@" ;;
esac
